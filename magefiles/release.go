//go:build mage

package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
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
	args := []string{"release"}
	if profile != "" {
		args = append(args, profile)
	}
	if err := tool(ctx, args...); err != nil {
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
		return strings.TrimPrefix(next, "profile="), true, nil
	}
	if strings.HasSuffix(next, ".cue") {
		return next, true, nil // a profile file kept outside profiles/
	}
	// A profile of profiles/ (gen.KnownProfiles' rule, without importing
	// the generator here).
	if st, err := os.Stat(filepath.Join("profiles", next+".cue")); err == nil && !st.IsDir() {
		return next, true, nil
	}
	return "", false, nil
}
