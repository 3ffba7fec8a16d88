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
	"path/filepath"
	"runtime"
	"strings"

	"github.com/workergen/workergen/gen"
	"github.com/workergen/workergen/gen/build"
)

// Build generates a profile and builds a binary for each of its targets: build profile=<name> (or build <name>, or build profile=<path/to/profile.cue>).
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

// Generate writes dist/<profile>/ for every profile, or for one: generate [profile=<name>].
//
// As with release, a profile argument must come last on the command line.
func Generate() error {
	names, err := gen.KnownProfiles(".")
	if err != nil {
		return err
	}
	profile, consumed, err := optionalProfileArg("generate")
	if err != nil {
		return err
	}
	if profile != "" {
		names = []string{profile}
	}
	var errs []error
	for _, n := range names {
		p, err := gen.Generate(".", n)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Println(gen.OutDir(".", p.Name))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if consumed {
		os.Exit(0)
	}
	return nil
}

// ExamplesModules are the Go modules below the repository root that
// `test` vets and tests besides the root module (each its own module, so
// `./...` of the root does not reach them).
var ExamplesModules = []string{"examples/thirdparty"}

// Test runs the README's test steps: Podman and Docker set-up (as root on Debian), gofmt, go vet ./..., go test ./..., then go vet and go test of the modules under examples/.
func Test(ctx context.Context) error {
	env, err := podmanSetup(ctx, ".ci/podman-setup.sh")
	if err != nil {
		return err
	}
	denv, err := podmanSetup(ctx, ".ci/docker-setup.sh")
	if err != nil {
		return err
	}
	env = append(env, denv...)
	if err := downloadAll(ctx); err != nil {
		return err
	}
	out, err := exec.CommandContext(ctx, "gofmt", "-l", ".").Output()
	if err != nil {
		return fmt.Errorf("gofmt: %w", err)
	}
	if files := strings.TrimSpace(string(out)); files != "" {
		return fmt.Errorf("files need gofmt -w:\n%s", files)
	}
	for _, dir := range append([]string{"."}, ExamplesModules...) {
		for _, args := range [][]string{{"vet", "./..."}, {"test", "./..."}} {
			fmt.Printf("== (%s) go %s\n", dir, strings.Join(args, " "))
			cmd := exec.CommandContext(ctx, "go", args...)
			cmd.Dir = dir
			cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
			cmd.Env = append(os.Environ(), env...)
			if dir != "." {
				cmd.Env = append(cmd.Env, "GOWORK=off")
			}
			if err := cmd.Run(); err != nil {
				return fmt.Errorf("(%s) go %s: %w", dir, strings.Join(args, " "), err)
			}
		}
	}
	return nil
}

// downloadAll puts every module of the main module's `all` pattern in the
// module cache, tests of dependencies included: the tests that build a
// profile's dist module offline (GOPROXY=off, or a file:// proxy over the
// module cache) run `go mod tidy`, which reads them, and a fresh machine's
// `go mod download` fetches only what builds. It works on copies of go.mod
// and go.sum (-modfile), so the checkout's go.sum is left as it is.
func downloadAll(ctx context.Context) error {
	fmt.Println("== go mod download all")
	tmp, err := os.MkdirTemp("", "workergen-modfile-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	for _, f := range []string{"go.mod", "go.sum"} {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(tmp, f), data, 0o644); err != nil {
			return err
		}
	}
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-modfile="+filepath.Join(tmp, "go.mod"), "all")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go mod download all: %w", err)
	}
	return nil
}

// podmanSetup runs a daemon set-up script (.ci/podman-setup.sh,
// .ci/docker-setup.sh) when it can (Linux, root, dpkg present) and returns
// the KEY=VALUE lines it prints, which the container engine's tests read.
// Elsewhere it says why it is skipped and those tests skip themselves.
func podmanSetup(ctx context.Context, script string) ([]string, error) {
	if _, err := os.Stat(script); err != nil {
		return nil, nil
	}
	_, dpkgErr := exec.LookPath("dpkg")
	if runtime.GOOS != "linux" || os.Geteuid() != 0 || dpkgErr != nil {
		fmt.Println("== set-up skipped (needs root on Debian); container tests that need it skip themselves:", script)
		return nil, nil
	}
	fmt.Println("== set-up:", script)
	cmd := exec.CommandContext(ctx, "bash", script)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", script, err)
	}
	var env []string
	for _, line := range strings.Split(string(out), "\n") {
		if k, _, ok := strings.Cut(strings.TrimSpace(line), "="); ok && strings.HasPrefix(k, "WORKERGEN_") && os.Getenv(k) == "" {
			env = append(env, strings.TrimSpace(line))
		}
	}
	return env, nil
}
