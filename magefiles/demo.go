//go:build mage

package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"

	"github.com/workergen/workergen/demo"
	"github.com/workergen/workergen/gen"
	"github.com/workergen/workergen/gen/build"
	"github.com/workergen/workergen/internal/progress"
	"github.com/workergen/workergen/taskcluster/localqueue"
)

// Demo builds the <os>-native worker for this machine and runs it against the embedded Queue loaded with examples/*.yml, then prints each task's resolution, log and artifacts.
func Demo(ctx context.Context) error {
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

// Queue runs the embedded Taskcluster Queue on 127.0.0.1:8080 (QUEUE_ADDR), state in dist/queue (QUEUE_DIR), creating the tasks in TASKS (a glob, e.g. 'examples/*.yml'); prints a worker config for it.
func Queue(ctx context.Context) error {
	addr := envOr("QUEUE_ADDR", "127.0.0.1:8080")
	dir := envOr("QUEUE_DIR", filepath.Join("dist", "queue"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// A static worker client, kept with the state so restarts keep it.
	credsPath := filepath.Join(dir, "worker-client.json")
	var client localqueue.Client
	if data, err := os.ReadFile(credsPath); err == nil {
		if err := json.Unmarshal(data, &client); err != nil {
			return fmt.Errorf("%s: %w", credsPath, err)
		}
	} else {
		b := make([]byte, 24)
		_, _ = rand.Read(b)
		client = localqueue.Client{ClientID: "local-worker", AccessToken: hex.EncodeToString(b), Scopes: []string{"*"}}
		data, _ := json.MarshalIndent(client, "", "  ")
		if err := os.WriteFile(credsPath, data, 0o600); err != nil {
			return err
		}
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	return localqueue.ListenAndServe(ctx, addr, localqueue.Options{
		Dir:     dir,
		Clients: []localqueue.Client{client},
		Logger:  slog.New(slog.NewTextHandler(os.Stderr, nil)),
	}, func(s *localqueue.Server, rootURL string) {
		if err := createTasks(ctx, s, os.Getenv("TASKS"), "workergen/local"); err != nil {
			fmt.Fprintf(os.Stderr, "TASKS: %v\n", err)
		}
		cfg := map[string]any{
			"rootUrl":      rootURL,
			"credentials":  map[string]string{"clientId": client.ClientID, "accessToken": client.AccessToken},
			"workerPoolId": "workergen/local",
			"workerGroup":  "local",
			"workerId":     "local-1",
		}
		data, _ := json.MarshalIndent(cfg, "", "  ")
		fmt.Printf("embedded Queue at %s (state in %s); a worker config for it:\n%s\n", rootURL, dir, data)
	})
}

// createTasks creates one task per file matching glob in taskQueueId.
func createTasks(ctx context.Context, s *localqueue.Server, glob, taskQueueID string) error {
	if glob == "" {
		return nil
	}
	files, err := filepath.Glob(glob)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("no file matches %q", glob)
	}
	created, err := demo.CreateTasks(ctx, s, files, taskQueueID)
	for _, c := range created {
		fmt.Printf("created task %s from %s\n", c.TaskID, c.File)
	}
	return err
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
