package main

import (
	"context"
	"fmt"
	"os"

	"github.com/workergen/workergen/release"
)

// releaseCmd builds every profile (or the one given) for every declared
// target into dist/release/ (RELEASE_DIR); PLATFORMS narrows the targets,
// DIST_DIR is where the profiles' modules are generated (default dist).
func releaseCmd(ctx context.Context, args []string) error {
	profile, err := optionalArg(args)
	if err != nil {
		return err
	}
	platforms, err := release.ParsePlatforms(os.Getenv("PLATFORMS"))
	if err != nil {
		return fmt.Errorf("PLATFORMS: %w", err)
	}
	opts := release.Options{Root: ".", OutDir: os.Getenv("RELEASE_DIR"), DistDir: os.Getenv("DIST_DIR"), Platforms: platforms, Progress: os.Stdout}
	if profile != "" {
		opts.Profiles = []string{profile}
	}
	_, err = release.Run(ctx, opts)
	return err
}
