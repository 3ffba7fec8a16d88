//go:build mage

// Build targets of workergen. Run them with `go tool mage <target>`;
// `go tool mage -l` lists them. The logic lives in gen/, gen/build/ and
// release/, run through internal/magetool (see tool.go).
package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/workergen/workergen/internal/progress"
	"github.com/workergen/workergen/internal/testsummary"
)

// Build generates a profile and builds a binary for each of its targets: build profile=<name> (or build <name>, or build profile=<path/to/profile.cue>).
func Build(ctx context.Context, profile string) error {
	return tool(ctx, "build", strings.TrimPrefix(strings.TrimSpace(profile), "profile="))
}

// Generate writes dist/<profile>/ for every profile, or for one: generate [profile=<name>].
//
// As with release, a profile argument must come last on the command line.
func Generate(ctx context.Context) error {
	profile, consumed, err := optionalProfileArg("generate")
	if err != nil {
		return err
	}
	args := []string{"generate"}
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

// ExamplesModules are the Go modules below the repository root that
// `test` vets and tests besides the root module (each its own module, so
// `./...` of the root does not reach them).
var ExamplesModules = []string{"examples/thirdparty"}

// Test runs the README's test steps: Podman and Docker set-up (as root on Debian), gofmt, go vet ./..., go test ./... (a summary with the failures first; -v output with MAGE_TEST_VERBOSE=1), the same for the modules under examples/, then checks that the tests changed no file of the checkout (tracked, untracked or ignored, dist/ included).
func Test(ctx context.Context) error {
	pr := progress.New(os.Stdout)
	before, err := treeState(ctx)
	if err != nil {
		return err
	}
	var env []string
	for _, script := range []string{".ci/podman-setup.sh", ".ci/docker-setup.sh"} {
		e, err := podmanSetup(ctx, pr, script)
		if err != nil {
			return err
		}
		env = append(env, e...)
	}
	if err := downloadAll(ctx, pr); err != nil {
		return err
	}
	step := pr.Start("", "gofmt -l .", "")
	out, err := exec.CommandContext(ctx, "gofmt", "-l", ".").Output()
	if err != nil {
		return step.End(fmt.Errorf("gofmt: %w", err), "")
	}
	if files := strings.TrimSpace(string(out)); files != "" {
		return step.End(fmt.Errorf("files need gofmt -w:\n%s", files), "")
	}
	step.Done("")
	for _, dir := range append([]string{"."}, ExamplesModules...) {
		if err := vet(ctx, pr, dir, env); err != nil {
			return err
		}
		if err := goTest(ctx, pr, dir, env); err != nil {
			return err
		}
	}
	step = pr.Start("", "check that the tests left the checkout as it was", "")
	after, err := treeState(ctx)
	if err != nil {
		return step.End(err, "")
	}
	return step.End(treeChanges(before, after), "")
}

// goEnv is the environment of go vet and go test in module dir.
func goEnv(dir string, env []string) []string {
	e := append(os.Environ(), env...)
	if dir != "." {
		e = append(e, "GOWORK=off")
	}
	return e
}

// inModule names module dir in a step ("" for the root module).
func inModule(dir string) string {
	if dir == "." {
		return ""
	}
	return " in " + dir
}

// vet runs go vet ./... in module dir.
func vet(ctx context.Context, pr *progress.Printer, dir string, env []string) error {
	step := pr.Start("", "go vet ./..."+inModule(dir), "compiles every package first: minutes on a cold Go cache")
	cmd := exec.CommandContext(ctx, "go", "vet", "./...")
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.Env = goEnv(dir, env)
	if err := cmd.Run(); err != nil {
		return step.End(fmt.Errorf("(%s) go vet ./...: %w", dir, err), "")
	}
	step.Done("")
	return nil
}

// goTest runs go test -json ./... in module dir: a line per package as it
// ends, then the summary (failures first). MAGE_TEST_VERBOSE=1 runs
// go test -v with its own output instead.
func goTest(ctx context.Context, pr *progress.Printer, dir string, env []string) error {
	verbose := os.Getenv("MAGE_TEST_VERBOSE") != ""
	args := []string{"test", "-json", "./..."}
	if verbose {
		args = []string{"test", "-v", "./..."}
	}
	step := pr.Start("", "go "+strings.Join(args, " ")+inModule(dir), "a line per package as it ends, a summary after")
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	cmd.Env = goEnv(dir, env)
	if verbose {
		cmd.Stdout = os.Stdout
		return step.End(cmd.Run(), "")
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return step.End(err, "")
	}
	sum := testsummary.New()
	readErr := sum.Read(stdout, os.Stdout)
	runErr := cmd.Wait()
	fmt.Printf("\n== summary of go test ./...%s\n", inModule(dir))
	sum.Write(os.Stdout)
	switch {
	case sum.Failed():
		return step.End(fmt.Errorf("(%s) go test ./...: failures (listed above the package lines)", dir), "")
	case runErr != nil:
		return step.End(fmt.Errorf("(%s) go test ./...: %w", dir, runErr), "")
	}
	return step.End(readErr, "")
}

// downloadAll puts every module of the main module's `all` pattern in the
// module cache, tests of dependencies included: the tests that build a
// profile's dist module offline (GOPROXY=off, or a file:// proxy over the
// module cache) run `go mod tidy`, which reads them, and a fresh machine's
// `go mod download` fetches only what builds. It works on copies of go.mod
// and go.sum (-modfile), so the checkout's go.sum is left as it is.
func downloadAll(ctx context.Context, pr *progress.Printer) error {
	step := pr.Start("", "go mod download all", "fetches every module the tests need: minutes on an empty module cache")
	err := downloadAllCopy(ctx)
	return step.End(err, "")
}

func downloadAllCopy(ctx context.Context) error {
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
func podmanSetup(ctx context.Context, pr *progress.Printer, script string) ([]string, error) {
	if _, err := os.Stat(script); err != nil {
		return nil, nil
	}
	_, dpkgErr := exec.LookPath("dpkg")
	if runtime.GOOS != "linux" || os.Geteuid() != 0 || dpkgErr != nil {
		pr.Printf("set-up skipped (needs root on Debian); container tests that need it skip themselves: %s", script)
		return nil, nil
	}
	step := pr.Start("", "set-up "+script, "installs packages with apt-get the first time")
	cmd := exec.CommandContext(ctx, "bash", script)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, step.End(fmt.Errorf("%s: %w", script, err), "")
	}
	step.Done("")
	var env []string
	for _, line := range strings.Split(string(out), "\n") {
		if k, _, ok := strings.Cut(strings.TrimSpace(line), "="); ok && strings.HasPrefix(k, "WORKERGEN_") && os.Getenv(k) == "" {
			env = append(env, strings.TrimSpace(line))
		}
	}
	return env, nil
}
