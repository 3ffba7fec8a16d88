package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/workergen/workergen/demo"
	"github.com/workergen/workergen/gen"
	"github.com/workergen/workergen/gen/build"
	"github.com/workergen/workergen/internal/progress"
)

// demoCmd builds the <os>-native worker for this machine and runs it
// against the embedded Queue loaded with examples/*.yml, then prints each
// task's resolution, log and artifacts; then the docker-worker examples on
// a container daemon when there is one.
func demoCmd(ctx context.Context, args []string) error {
	if len(args) != 0 {
		return fmt.Errorf("demo takes no arguments, got %q", args)
	}
	pr := progress.New(os.Stdout)
	profile := runtime.GOOS + "-native"
	host := gen.Target{OS: runtime.GOOS, Arch: runtime.GOARCH}
	res, err := build.Build(ctx, build.Options{Root: ".", Profile: profile, Targets: []gen.Target{host}, Progress: pr})
	if err != nil {
		return err
	}
	tasks, err := filepath.Glob(filepath.Join("examples", "*.yml"))
	if err != nil || len(tasks) == 0 {
		return fmt.Errorf("no example tasks in examples/: %v", err)
	}
	pr.Printf("running %d example tasks from examples/ through the embedded Queue", len(tasks))
	dir := filepath.Join("dist", "demo")
	_, err = demo.Run(ctx, demo.Options{
		Binary:   res.Binaries[0].Path,
		Tasks:    tasks,
		Dir:      dir,
		Stdout:   os.Stdout,
		Progress: pr,
	})
	if err != nil {
		return fmt.Errorf("%w (worker log: %s)", err, filepath.Join(dir, "worker.log"))
	}
	return containerDemo(ctx, pr, host)
}

// containerDemo runs examples/linux-docker/*.yml (docker-worker payloads)
// with the linux-docker worker when a Docker daemon answers (the socket in
// WORKERGEN_DOCKER_SOCKET or /run/workergen-docker.env, else Docker's
// standard one), else with the linux-podman worker on Podman's set-up
// socket; without a daemon it says so and returns nil.
func containerDemo(ctx context.Context, pr *progress.Printer, host gen.Target) error {
	profile, socket := demo.ContainerDaemon()
	if profile == "" {
		pr.Printf("\nno container daemon found (run .ci/docker-setup.sh or .ci/podman-setup.sh as root): examples/linux-docker skipped")
		return nil
	}
	tasks, err := filepath.Glob(filepath.Join("examples", "linux-docker", "*.yml"))
	if err != nil || len(tasks) == 0 {
		return fmt.Errorf("no example tasks in examples/linux-docker: %v", err)
	}
	pr.Printf("\n%s: %d docker-worker tasks from examples/linux-docker on %s", profile, len(tasks), socket)
	res, err := build.Build(ctx, build.Options{Root: ".", Profile: profile, Targets: []gen.Target{host}, Progress: pr})
	if err != nil {
		return err
	}
	dir := filepath.Join("dist", "demo-"+profile)
	if _, err := demo.Run(ctx, demo.Options{Binary: res.Binaries[0].Path, Tasks: tasks, Dir: dir, Stdout: os.Stdout, Progress: pr,
		// A network of the demo's own (the engine creates it): the
		// taskcluster proxy listens on its gateway, not on the default
		// bridge's that another worker may hold.
		Engine: map[string]any{"socket": socket, "network": "workergen-demo"}}); err != nil {
		return fmt.Errorf("%w (worker log: %s)", err, filepath.Join(dir, "worker.log"))
	}
	return nil
}
