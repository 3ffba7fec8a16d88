//go:build mage

// Build targets of workergen. Run them with `go tool mage <target>`;
// `go tool mage -l` lists them. The logic lives in gen/ and gen/build/.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"

	"github.com/workergen/workergen/gen"
	"github.com/workergen/workergen/gen/build"
)

// Build generates a profile and builds a binary for each of its targets: build profile=<name> (or build <name>).
func Build(ctx context.Context, profile string) error {
	name := build.ProfileArg(profile)
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	res, err := build.Build(ctx, build.Options{Root: ".", Profile: name, Logger: logger})
	if err != nil {
		return err
	}
	for _, b := range res.Binaries {
		fmt.Println(b.Path)
	}
	return nil
}

// Generate writes dist/<profile>/ for every profile, or one with -profile=<name>.
func Generate(profile *string) error {
	names, err := gen.KnownProfiles(".")
	if err != nil {
		return err
	}
	if profile != nil {
		names = []string{build.ProfileArg(*profile)}
	}
	var errs []error
	for _, n := range names {
		if _, err := gen.Generate(".", n); err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Println(gen.OutDir(".", n))
	}
	return errors.Join(errs...)
}

// Test runs the checks CI runs: gofmt, go vet ./..., go test ./...
func Test(ctx context.Context) error {
	out, err := exec.CommandContext(ctx, "gofmt", "-l", ".").Output()
	if err != nil {
		return fmt.Errorf("gofmt: %w", err)
	}
	if files := strings.TrimSpace(string(out)); files != "" {
		return fmt.Errorf("files need gofmt -w:\n%s", files)
	}
	for _, args := range [][]string{{"vet", "./..."}, {"test", "./..."}} {
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("go %s: %w", strings.Join(args, " "), err)
		}
	}
	return nil
}
