//go:build mage

package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/workergen/workergen/gen"
	"github.com/workergen/workergen/gen/build"
	"github.com/workergen/workergen/release"
)

// Release builds every profile for every declared target into dist/release/ (archives, SHA256SUMS, SBOMs, manifest.json): release [profile=<name>]; PLATFORMS=linux/amd64,windows/arm64 narrows the targets.
//
// RELEASE_DIR overrides the output directory (default dist/release);
// DIST_DIR the folder the profiles' modules are generated in (default
// dist; tests give a temporary one).
//
// mage has no optional positional arguments, so the profile is read from
// the arguments after "release" here: "profile=<name>" or a bare profile
// name. When one is given the target exits itself on success, because mage
// would otherwise take the argument for the next target's name; so
// `release profile=<name>` must come last on the command line.
func Release(ctx context.Context) error {
	profile, consumed, err := optionalProfileArg("release")
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
	if _, err := release.Run(ctx, opts); err != nil {
		return err
	}
	if consumed {
		os.Exit(0)
	}
	return nil
}

// optionalProfileArg finds the argument following the target's name on the
// command line: "profile=<name>", or a bare name of a profile in profiles/,
// or a bare path of a profile file ending in ".cue".
// consumed reports that one was found, so the target must exit on success
// before mage reads it as the next target.
func optionalProfileArg(target string) (profile string, consumed bool, err error) {
	args := os.Args[1:]
	i := slices.IndexFunc(args, func(a string) bool { return strings.EqualFold(a, target) })
	if i < 0 || i+1 >= len(args) {
		return "", false, nil
	}
	next := args[i+1]
	if strings.HasPrefix(next, "profile=") {
		return build.ProfileArg(next), true, nil
	}
	if strings.HasSuffix(next, ".cue") {
		return next, true, nil // a profile file kept outside profiles/
	}
	known, err := gen.KnownProfiles(".")
	if err != nil {
		return "", false, err
	}
	if slices.Contains(known, next) {
		return next, true, nil
	}
	return "", false, nil
}
