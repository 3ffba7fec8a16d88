//go:build mage

package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/workergen/workergen/internal/progress"
)

// toolPackage is the program behind build, generate, demo, release and
// bench. The magefiles do not import the generator: mage compiles them
// before it prints a word, so on a cold Go cache every package they import
// is compiled in silence (CUE alone takes most of a minute). The tool's
// compile prints progress instead.
const toolPackage = "./internal/magetool"

// tool compiles internal/magetool (a progress line when that takes over 2
// seconds: up to date, it is quick) into the user's cache directory, not
// the checkout, and runs it with args, its output on ours. When ctx ends
// (mage's interrupt) the tool gets SIGINT, so the processes it started
// (a demo's worker and Queue) stop with it.
func tool(ctx context.Context, args ...string) error {
	bin, err := compileTool(ctx)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 30 * time.Second
	if err := cmd.Run(); err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return fmt.Errorf("%s failed (exit status %d; its error is above)", args[0], exit.ExitCode())
		}
		return err
	}
	return nil
}

// compileTool compiles internal/magetool (a progress line when that
// takes over 2 seconds) and returns the binary's path.
func compileTool(ctx context.Context) (string, error) {
	bin, err := toolBinary()
	if err != nil {
		return "", err
	}
	step := progress.New(os.Stdout).StartQuiet(2*time.Second, "", "compile the targets' program "+toolPackage,
		"the generator with CUE: on a cold Go cache this downloads modules and takes a minute or more")
	build := exec.CommandContext(ctx, "go", "build", "-buildvcs=false", "-o", bin, toolPackage)
	var out bytes.Buffer
	build.Stdout, build.Stderr = &out, &out
	if err := build.Run(); err != nil {
		return "", step.End(fmt.Errorf("go build %s: %w\n%s", toolPackage, err, strings.TrimSpace(out.String())), "")
	}
	step.Done("")
	return bin, nil
}

// toolBinary is where the tool is compiled: <user cache>/workergen/
// magetool-<digest of the checkout's path>, one per checkout.
func toolBinary() (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("finding a cache directory for %s: %w", toolPackage, err)
	}
	root, err := filepath.Abs(".")
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(root))
	name := "magetool-" + hex.EncodeToString(sum[:8])
	if runtime.GOOS == "windows" {
		name += ".exe"
	}
	dir := filepath.Join(cache, "workergen")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	return filepath.Join(dir, name), nil
}
