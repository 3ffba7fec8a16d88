package container_test

// Integration: docker-worker's artifacts, log and features fields through
// the linux-podman worker's plugins (artifacts, tasklog, env) against
// Podman and the embedded Queue.

import (
	"bytes"
	"compress/gzip"
	"io"
	"strings"
	"testing"

	"github.com/workergen/workergen/engines/container/daemontest"
	"github.com/workergen/workergen/taskcluster/localqueue"
)

// artifacts returns the task's run-0 artifacts by name, content decoded.
func (e *itEnv) artifacts(id string) map[string]localqueue.Artifact {
	e.t.Helper()
	list, err := e.server.Artifacts(id, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string]localqueue.Artifact{}
	for _, a := range list {
		if a.ContentEncoding == "gzip" {
			zr, err := gzip.NewReader(bytes.NewReader(a.Content))
			if err != nil {
				e.t.Fatalf("artifact %s: %v", a.Name, err)
			}
			if a.Content, err = io.ReadAll(zr); err != nil {
				e.t.Fatalf("artifact %s: %v", a.Name, err)
			}
		}
		out[a.Name] = a
	}
	return out
}

func (e *itEnv) expectFile(arts map[string]localqueue.Artifact, name, content string) {
	e.t.Helper()
	a, ok := arts[name]
	switch {
	case !ok:
		e.t.Errorf("no artifact %s; have %v", name, names(arts))
	case a.StorageType != "s3" && a.StorageType != "object":
		e.t.Errorf("artifact %s: storage type %s, want a file", name, a.StorageType)
	case string(a.Content) != content:
		e.t.Errorf("artifact %s: content %q, want %q", name, a.Content, content)
	}
}

func (e *itEnv) expectError(arts map[string]localqueue.Artifact, name, reason string) {
	e.t.Helper()
	a, ok := arts[name]
	switch {
	case !ok:
		e.t.Errorf("no artifact %s; have %v", name, names(arts))
	case a.StorageType != "error" || a.Reason != reason:
		e.t.Errorf("artifact %s: %s/%s, want error/%s", name, a.StorageType, a.Reason, reason)
	}
}

func names(arts map[string]localqueue.Artifact) []string {
	var out []string
	for n := range arts {
		out = append(out, n)
	}
	return out
}

// TestWorkerDockerWorkerPlugins runs the docker-worker dialect's plugins
// through the worker on each daemon.
func TestWorkerDockerWorkerPlugins(t *testing.T) {
	daemontest.ForEach(t, func(t *testing.T, d daemontest.Daemon) {
		dockerWorkerPlugins(t, newItEnvOn(t, d, map[string]any{"pullPolicy": "always", "memoryLimit": 64 << 20}))
	})
}

func dockerWorkerPlugins(t *testing.T, e *itEnv) {

	// Files and directories copied out of the container; a missing path
	// and the wrong kind are error artifacts that do not fail the task,
	// as in docker-worker.
	arts := e.payload(`mkdir -p /out/dir/sub && echo file-content > /out/file.txt && echo a > /out/dir/a.txt && echo b > /out/dir/sub/b.txt && echo env wt=$TASKCLUSTER_WORKER_TYPE wg=$TASKCLUSTER_WORKER_GROUP wd=${TASK_WORKDIR:-unset}`)
	arts["artifacts"] = map[string]any{
		"public/file.txt":    map[string]any{"type": "file", "path": "/out/file.txt"},
		"public/dir":         map[string]any{"type": "directory", "path": "/out/dir"},
		"public/missing.txt": map[string]any{"type": "file", "path": "/nope/missing.txt"},
		"public/wrong-kind":  map[string]any{"type": "directory", "path": "/out/file.txt"},
	}
	tArts := e.createTask(arts)

	// Artifacts are copied out after a maxRunTime kill too.
	slow := e.payload("mkdir -p /out && echo partial > /out/partial.txt && echo sleeping && sleep 600")
	slow["maxRunTime"] = 3
	slow["artifacts"] = map[string]any{"public/partial.txt": map[string]any{"type": "file", "path": "/out/partial.txt"}}
	tKill := e.createTask(slow)

	// features.artifacts: false publishes none.
	off := e.payload("mkdir -p /out && echo x > /out/x.txt")
	off["artifacts"] = map[string]any{"public/x.txt": map[string]any{"type": "file", "path": "/out/x.txt"}}
	off["features"] = map[string]any{"artifacts": false}
	tOff := e.createTask(off)

	// A custom live log name; bulkLog and localLiveLog accepted.
	logs := e.payload("echo custom log")
	logs["log"] = "public/logs/custom.log"
	logs["features"] = map[string]any{"bulkLog": true, "localLiveLog": true}
	tLogs := e.createTask(logs)

	// Chain of Trust on a worker without a signing key is malformed-payload
	// naming the feature.
	cot := e.payload("true")
	cot["features"] = map[string]any{"chainOfTrust": true}
	tCoT := e.createTask(cot)
	// The taskcluster proxy: the container calls http://taskcluster, and
	// the worker signs for it with the task's credentials.
	proxy := e.payload(`echo "proxy at $TASKCLUSTER_PROXY_URL"; wget -qO- "$TASKCLUSTER_PROXY_URL/api/queue/v1/task/$TASK_ID/status"`)
	proxy["features"] = map[string]any{"taskclusterProxy": true}
	tProxy := e.createTask(proxy)

	e.work(6)

	e.expect(tArts, "completed", "env wt=linux-podman wg=it wd=unset", `artifact "public/dir/sub/b.txt"`,
		"does not fail the task")
	got := e.artifacts(tArts)
	e.expectFile(got, "public/file.txt", "file-content\n")
	e.expectFile(got, "public/dir/a.txt", "a\n")
	e.expectFile(got, "public/dir/sub/b.txt", "b\n")
	e.expectError(got, "public/missing.txt", "file-missing-on-worker")
	e.expectError(got, "public/wrong-kind", "invalid-resource-on-worker")

	e.expect(tKill, "failed", "sleeping", "killed", `artifact "public/partial.txt"`)
	e.expectFile(e.artifacts(tKill), "public/partial.txt", "partial\n")

	e.expect(tOff, "completed", "payload.features.artifacts is false")
	if _, ok := e.artifacts(tOff)["public/x.txt"]; ok {
		t.Errorf("features.artifacts false, yet public/x.txt was published")
	}

	if got := e.resolution(tLogs); got != "completed" {
		t.Errorf("custom log task resolved %s", got)
	}
	lg := e.artifacts(tLogs)
	if a := lg["public/logs/custom.log"]; a.StorageType != "link" || a.Link != "public/logs/custom_backing.log" {
		t.Errorf("public/logs/custom.log: %+v, want a link to public/logs/custom_backing.log", a)
	}
	for _, name := range []string{"public/logs/custom_backing.log", "public/logs/terminal_bulk.log.gz"} {
		if !strings.Contains(string(lg[name].Content), "custom log") {
			t.Errorf("%s lacks the task output: %q", name, lg[name].Content)
		}
	}
	if !strings.Contains(string(lg["public/logs/custom_backing.log"].Content), "features.localLiveLog: this worker does not stream live logs") {
		t.Errorf("the log does not say live logs are not streamed:\n%s", lg["public/logs/custom_backing.log"].Content)
	}
	if _, ok := lg["public/logs/live_backing.log"]; ok {
		t.Errorf("custom log name, yet public/logs/live_backing.log was published")
	}

	e.expect(tCoT, "exception/malformed-payload", "payload.features.chainOfTrust")
	e.expect(tProxy, "completed", "proxy at http://taskcluster\n", "[taskcluster-proxy] serving at http://taskcluster", `"state":"running"`)

}
