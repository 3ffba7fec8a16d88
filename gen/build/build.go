// Package build generates a profile and cross-compiles its worker binaries:
// the logic behind `go tool mage build` (magefiles/), kept importable so
// tests and the release pipeline call it directly.
//
// Each profile is its own Go module (dist/<profile>/go.mod, written by
// gen), built from its folder with GOWORK=off.
//
// Every target is built with CGO_ENABLED=0, -trimpath, -buildvcs=false,
// -tags nethttpomithttp2 (see Tags) and -ldflags "-s -w -buildid= -X
// .../worker.version=<v> -X .../worker.commit=<c>", into
// dist/<profile>/bin/<binary>-<os>-<arch>[.exe].
// Targets build in parallel, at most Options.Jobs at a time.
package build

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/workergen/workergen/gen"
	"github.com/workergen/workergen/internal/gitcmd"
	"github.com/workergen/workergen/internal/progress"
)

// workerPkg is where version and commit are stamped.
const workerPkg = "github.com/workergen/workergen/worker"

// ErrBuild is wrapped by errors of a failed `go build`.
var ErrBuild = errors.New("go build failed")

// Options configure Build. Zero values get defaults.
type Options struct {
	// Root is the repository root (the directory holding go.mod).
	Root string
	// Profile is the profile name.
	Profile string
	// Targets restricts the build to these targets of the profile; nil
	// builds every declared target. A target the profile does not declare
	// is an error.
	Targets []gen.Target
	// Jobs bounds parallel `go build` runs; default runtime.NumCPU().
	Jobs int
	// Version and Commit are stamped into the binaries; empty means
	// VersionInfo(Root).
	Version, Commit string
	// Go is the go command; default "go".
	Go string
	// Progress, when set, prints a line as generation and each target's
	// compilation start and end (with their durations), and a "still" line
	// while the compiler works; nil prints nothing.
	Progress *progress.Printer
	// DistDir is where the profile's module is generated
	// (DistDir/<profile>/); empty means Root/dist. Tests give a temporary
	// folder, so the checkout's dist/ stays as it is.
	DistDir string
	// BinDir is the directory binaries are written to (created if
	// needed); empty means <profile's module folder>/bin. The release
	// pipeline builds into its own staging directory.
	BinDir string
	// Env is added to the environment of `go build` (after the process's
	// own, before CGO_ENABLED, GOOS and GOARCH), e.g. "GOFLAGS=" or
	// "GOWORK=off" to keep the caller's settings out of a release.
	Env []string
}

// Binary is one built worker binary.
type Binary struct {
	Target gen.Target
	// Path is the binary's path (Root-joined).
	Path string
	// Elapsed is the wall time of its `go build`.
	Elapsed time.Duration
}

// Result is what Build produced.
type Result struct {
	Profile  *gen.Profile
	Binaries []Binary
}

// ProfileArg extracts the profile name from a mage argument: mage passes
// `go tool mage build profile=linux-native` as the single string
// "profile=linux-native"; a bare "linux-native" is accepted too.
func ProfileArg(arg string) string {
	return strings.TrimPrefix(strings.TrimSpace(arg), "profile=")
}

// Build generates the profile and builds every target. It returns the
// binaries in the profile's target order. Generation errors wrap
// gen.ErrUnknownProfile or gen.ErrInvalidProfile; compile errors wrap
// ErrBuild and carry the compiler output.
func Build(ctx context.Context, opts Options) (*Result, error) {
	opts = withDefaults(opts)
	step := opts.Progress.Start("", "generate profile "+opts.Profile, "")
	p, err := gen.GenerateIn(ctx, opts.Root, opts.Profile, "", opts.DistDir)
	if err != nil {
		step.Fail(err)
		return nil, err
	}
	modDir := moduleDir(opts, p.Name)
	step.Done(modDir)
	targets := p.Targets
	if opts.Targets != nil {
		for _, t := range opts.Targets {
			found := false
			for _, d := range p.Targets {
				found = found || d == t
			}
			if !found {
				return nil, fmt.Errorf("building profile %q: target %s is not declared by %s", p.Name, t, p.File)
			}
		}
		targets = opts.Targets
	}
	if opts.Version == "" || opts.Commit == "" {
		v, c := VersionInfo(ctx, opts.Root)
		if opts.Version == "" {
			opts.Version = v
		}
		if opts.Commit == "" {
			opts.Commit = c
		}
	}
	binDir := opts.BinDir
	if binDir == "" {
		binDir = filepath.Join(modDir, gen.BinDir)
	}
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return nil, fmt.Errorf("building profile %q: %w", p.Name, err)
	}

	res := &Result{Profile: p, Binaries: make([]Binary, len(targets))}
	errs := make([]error, len(targets))
	sem := make(chan struct{}, opts.Jobs)
	var noted atomic.Bool
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				errs[i] = ctx.Err()
				return
			}
			defer func() { <-sem }()
			out := filepath.Join(binDir, t.BinaryName(p.Binary))
			note := ""
			if !noted.Swap(true) {
				note = compileNote // once per build
			}
			step := opts.Progress.Start("", "compile "+modDir+" for "+t.String(), note)
			start := time.Now()
			errs[i] = goBuild(ctx, opts, modDir, p.Name, t, out)
			res.Binaries[i] = Binary{Target: t, Path: out, Elapsed: time.Since(start)}
			if errs[i] != nil {
				step.Fail(errs[i])
				return
			}
			detail := out
			if st, err := os.Stat(out); err == nil {
				detail += fmt.Sprintf(" (%.1f MiB)", float64(st.Size())/(1<<20))
			}
			step.Done(detail)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return res, nil
}

func withDefaults(opts Options) Options {
	if opts.Root == "" {
		opts.Root = "."
	}
	if opts.Jobs <= 0 {
		opts.Jobs = runtime.NumCPU()
	}
	if opts.Go == "" {
		opts.Go = "go"
	}
	return opts
}

// compileNote is the progress note of a target's compilation: the one step
// that stays silent for long.
const compileNote = "the first build on a cold Go cache downloads modules and takes minutes"

// moduleDir is the folder of the profile's generated module.
func moduleDir(opts Options, profile string) string {
	if opts.DistDir != "" {
		return filepath.Join(opts.DistDir, profile)
	}
	return gen.OutDir(opts.Root, profile)
}

// Tags are the build tags of every worker binary. nethttpomithttp2 leaves
// HTTP/2 out of net/http (0.55 MB of linux/amd64 code): the worker serves
// no TLS (its listeners, taskcluster-proxy, live logs, interactive and
// metrics, are plain HTTP/1.1, where net/http never speaks HTTP/2) and
// every server it calls speaks HTTP/1.1 (the Taskcluster services, S3,
// the object service's backends), so its requests go over HTTP/1.1
// connections, kept alive for reuse (taskcluster's client keeps enough
// idle connections per host for concurrent uploads).
const Tags = "nethttpomithttp2"

// LDFlags returns the -ldflags value stamping version and commit.
func LDFlags(version, commit string) string {
	return fmt.Sprintf("-s -w -buildid= -X %s.version=%s -X %s.commit=%s", workerPkg, version, workerPkg, commit)
}

// goBuild builds the profile's dist module (modDir, dist/<profile>/ by
// default, its own module) for t into out, with GOWORK=off: the dist go.mod
// names every module the binary links.
func goBuild(ctx context.Context, opts Options, modDir, profile string, t gen.Target, out string) error {
	abs, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, opts.Go, "build",
		"-trimpath", "-buildvcs=false", "-tags", Tags,
		"-ldflags", LDFlags(opts.Version, opts.Commit),
		"-o", abs, ".")
	cmd.Dir = modDir
	cmd.Env = append(append(os.Environ(), opts.Env...), "GOWORK=off", "CGO_ENABLED=0", "GOOS="+t.OS, "GOARCH="+t.Arch)
	var output bytes.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%w: profile %s for %s: %v\n%s", ErrBuild, profile, t, err, strings.TrimSpace(output.String()))
	}
	return nil
}

var releaseTag = regexp.MustCompile(`^v(\d+\.\d+\.\d+)$`)

// VersionInfo returns the version and commit to stamp: on a vX.Y.Z tag
// (`git describe --tags --exact-match`) the version is X.Y.Z, else
// "0.0.0-dev+<short commit>". Without git it returns "0.0.0-dev" and
// "unknown".
func VersionInfo(ctx context.Context, root string) (version, commit string) {
	git := func(args ...string) string { return gitcmd.Output(ctx, root, args...) }
	commit = git("rev-parse", "HEAD")
	if commit == "" {
		return "0.0.0-dev", "unknown"
	}
	if m := releaseTag.FindStringSubmatch(git("describe", "--tags", "--exact-match")); m != nil {
		return m[1], commit
	}
	short := commit
	if len(short) > 12 {
		short = short[:12]
	}
	return "0.0.0-dev+" + short, commit
}
