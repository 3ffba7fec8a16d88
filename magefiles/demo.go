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
	"syscall"

	"github.com/workergen/workergen/demo"
	"github.com/workergen/workergen/taskcluster/localqueue"
)

// Demo builds the <os>-native worker for this machine and runs it against the embedded Queue loaded with examples/*.yml, then prints each task's resolution, log and artifacts (then examples/linux-docker on a container daemon, when there is one).
func Demo(ctx context.Context) error {
	return tool(ctx, "demo")
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
