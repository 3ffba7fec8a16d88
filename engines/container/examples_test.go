package container_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/workergen/workergen/engines/container/daemontest"
	"github.com/workergen/workergen/worker"
)

// TestLinuxDockerExamples runs examples/linux-docker/*.yml (the demo's
// docker-worker task set) through the worker on each daemon; all complete,
// and the cache example, run twice, finds its first run's file.
func TestLinuxDockerExamples(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(repoRoot(t), "examples", "linux-docker", "*.yml"))
	if err != nil || len(files) < 4 {
		t.Fatalf("examples/linux-docker: %v %v", files, err)
	}
	daemontest.ForEach(t, func(t *testing.T, d daemontest.Daemon) {
		e := newItEnvOn(t, d, map[string]any{})
		ids := map[string]string{}
		var cacheAgain string
		for _, f := range files {
			ids[filepath.Base(f)] = e.createExample(f)
			if filepath.Base(f) == "caches.yml" {
				cacheAgain = e.createExample(f)
			}
		}
		e.work(len(files) + 1)
		want := map[string][]string{
			"artifacts.yml":         {"wrote /out/report.json"},
			"caches.yml":            {"this cache has now served 1 run(s)"},
			"env.yml":               {"Hello from a docker-worker task", "workerType=linux-podman"},
			"taskcluster-proxy.yml": {"the Queue says this task is running"},
		}
		for name, id := range ids {
			e.expect(id, "completed", want[name]...)
		}
		e.expect(cacheAgain, "completed", "this cache has now served 2 run(s)")
		arts := e.artifacts(ids["artifacts.yml"])
		e.expectFile(arts, "public/report.json", "{\"passed\": 3, \"failed\": 0}\n")
		e.expectFile(arts, "public/results/test-2.txt", "test 2 ok\n")
	})
}

// createExample creates the task of an example file in the test's queue.
func (e *itEnv) createExample(path string) string {
	e.t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		e.t.Fatal(err)
	}
	def, err := worker.ParseTaskFile(data, time.Now())
	if err != nil {
		e.t.Fatalf("%s: %v", path, err)
	}
	var payload map[string]any
	if err := json.Unmarshal(def.Payload, &payload); err != nil {
		e.t.Fatal(err)
	}
	if img, _ := payload["image"].(string); strings.HasPrefix(img, "localhost:5000/") {
		payload["image"] = e.image
	}
	return e.createTask(payload, def.Scopes...)
}
