package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/workergen/workergen/gen"
	"github.com/workergen/workergen/gen/build"
	"github.com/workergen/workergen/internal/progress"
)

// buildCmd generates a profile and builds a binary for each of its
// targets into dist/<profile>/bin, printing their paths.
func buildCmd(ctx context.Context, args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("build: want one profile (a name or a .cue file), got %q", args)
	}
	res, err := build.Build(ctx, build.Options{Root: ".", Profile: build.ProfileArg(args[0]), Progress: progress.New(os.Stdout)})
	if err != nil {
		return err
	}
	for _, b := range res.Binaries {
		fmt.Println(b.Path)
	}
	return nil
}

// generateCmd writes dist/<profile>/ for every profile, or for the one
// given.
func generateCmd(ctx context.Context, args []string) error {
	profile, err := optionalArg(args)
	if err != nil {
		return err
	}
	names := []string{build.ProfileArg(profile)}
	if profile == "" {
		if names, err = gen.KnownProfiles("."); err != nil {
			return err
		}
	}
	pr := progress.New(os.Stdout)
	var errs []error
	for i, n := range names {
		step := pr.Start(fmt.Sprintf("[%d/%d]", i+1, len(names)), "generate profile "+n, "")
		p, err := gen.GenerateContext(ctx, ".", n, "")
		if err != nil {
			step.Fail(err)
			errs = append(errs, err)
			continue
		}
		step.Done(gen.OutDir(".", p.Name))
	}
	return errors.Join(errs...)
}
