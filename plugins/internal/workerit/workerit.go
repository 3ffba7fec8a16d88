// Package workerit runs a shipped profile's worker (the generator's
// resolved profile, engine and plugins wired as the generated main wires
// them) against the embedded Queue over HTTP, for the integration tests of
// plugins. It is imported by tests only.
package workerit

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/workergen/workergen/engines/container"
	"github.com/workergen/workergen/engines/native"
	"github.com/workergen/workergen/gen"
	"github.com/workergen/workergen/plugins"
	"github.com/workergen/workergen/plugins/artifacts"
	"github.com/workergen/workergen/plugins/chainoftrust"
	"github.com/workergen/workergen/plugins/env"
	"github.com/workergen/workergen/plugins/exitstatus"
	"github.com/workergen/workergen/plugins/interactive"
	"github.com/workergen/workergen/plugins/maxruntime"
	"github.com/workergen/workergen/plugins/mounts"
	"github.com/workergen/workergen/plugins/taskclusterproxy"
	"github.com/workergen/workergen/plugins/tasklog"
	"github.com/workergen/workergen/task"
	"github.com/workergen/workergen/taskcluster"
	"github.com/workergen/workergen/taskcluster/localqueue"
	"github.com/workergen/workergen/worker"
)

// Env is a worker of one profile and the embedded Queue it works for.
type Env struct {
	T       testing.TB
	Server  *localqueue.Server
	URL     string
	Client  *taskcluster.Client
	Runner  *worker.Runner
	Config  *worker.Config
	Pool    string
	Build   worker.Build
	Image   string // container profiles: the test image
	mu      sync.Mutex
	plugins map[string]plugins.Plugin
}

// Options configure New.
type Options struct {
	Profile string
	// Plugins are config sections by plugin name, over the profile's
	// defaults.
	Plugins map[string]any
	// Engine is the engine config (container: the socket is added).
	Engine map[string]any
}

// PodmanEnv reads a variable from the environment or
// /run/workergen-podman.env (.ci/podman-setup.sh).
func PodmanEnv(name string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	data, _ := os.ReadFile("/run/workergen-podman.env")
	for _, l := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok && k == name {
			return v
		}
	}
	return ""
}

// New starts the Queue and builds the worker; container profiles skip t
// without a Podman socket.
func New(t testing.TB, o Options) *Env {
	t.Helper()
	p, err := gen.Resolve(repoRoot(t), o.Profile)
	if err != nil {
		t.Fatal(err)
	}
	e := &Env{T: t, Pool: "workergen-test/" + o.Profile, plugins: map[string]plugins.Plugin{}}
	eng := worker.EngineEntry{Name: p.Engine.Name}
	engCfg := o.Engine
	if engCfg == nil {
		engCfg = map[string]any{}
	}
	switch p.Engine.Name {
	case "native":
		eng.New = native.New
	case "container":
		sock := PodmanEnv("WORKERGEN_PODMAN_SOCKET")
		if sock == "" {
			t.Skip("no container daemon: set WORKERGEN_PODMAN_SOCKET (run .ci/podman-setup.sh as root)")
		}
		e.Image = PodmanEnv("WORKERGEN_TEST_IMAGE")
		if e.Image == "" {
			e.Image = "localhost:5000/workergen/busybox:latest"
		}
		engCfg["socket"] = sock
		eng.New = container.New
	default:
		t.Fatalf("workerit: engine %s not supported", p.Engine.Name)
	}
	e.startQueue(t)
	e.Build = worker.Build{Profile: p.Name, Binary: p.Binary, Dialect: task.Dialect(p.Dialect), Engine: eng,
		PayloadSchema: p.PayloadSchema, ConfigSchema: p.ConfigSchema, DefaultConfig: p.DefaultConfig, ProfileJSON: p.ProfileJSON}
	for _, pl := range p.Plugins {
		e.Build.Plugins = append(e.Build.Plugins, worker.PluginEntry{Name: pl.Name, New: e.capture(t, pl.Name)})
	}
	for _, u := range p.Unsupported {
		e.Build.Unsupported = append(e.Build.Unsupported, worker.Unsupported{Path: u.Path, Feature: u.Feature})
	}
	var defaults struct {
		Plugins map[string]json.RawMessage `json:"plugins"`
	}
	if err := json.Unmarshal(p.DefaultConfig, &defaults); err != nil {
		t.Fatal(err)
	}
	if defaults.Plugins == nil {
		defaults.Plugins = map[string]json.RawMessage{}
	}
	for name, sec := range o.Plugins {
		raw, _ := json.Marshal(sec)
		defaults.Plugins[name] = raw
	}
	raw, _ := json.Marshal(engCfg)
	e.Config = &worker.Config{RootURL: e.URL, WorkerPoolID: e.Pool, WorkerGroup: "it-group", WorkerID: fmt.Sprintf("it-%d", os.Getpid()),
		Capacity: 1, TasksDir: t.TempDir(), MaxTaskRunTime: 3600, ReclaimMargin: 30, ArtifactUpload: "s3", UploadConcurrency: 4,
		Engine: raw, Plugins: defaults.Plugins}
	r, err := worker.NewRunner(e.Build, e.Config, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	e.Runner = r
	return e
}

func (e *Env) startQueue(t testing.TB) {
	s, err := localqueue.New(localqueue.Options{
		Dir: t.TempDir(), ClaimTimeout: time.Minute, LongPoll: 200 * time.Millisecond, NoSync: true,
		Clients: []localqueue.Client{{ClientID: "worker", AccessToken: "worker-token",
			Scopes: []string{"queue:claim-work:" + e.Pool, "queue:worker-id:*", "queue:get-artifact:*"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		(&taskcluster.Client{}).CloseIdleConnections()
		srv.Close()
		s.Close()
	})
	e.Server, e.URL = s, srv.URL
	e.Client = &taskcluster.Client{RootURL: srv.URL, Credentials: taskcluster.StaticCredentials(taskcluster.Credentials{ClientID: "worker", AccessToken: "worker-token"}),
		InitialInterval: 20 * time.Millisecond, MaxInterval: 200 * time.Millisecond}
}

// capture wraps plugin name's constructor to keep the plugin it makes.
func (e *Env) capture(t testing.TB, name string) plugins.Constructor {
	ctors := map[string]plugins.Constructor{"env": env.New, "maxruntime": maxruntime.New, "exitstatus": exitstatus.New,
		"tasklog": tasklog.New, "artifacts": artifacts.New, "taskclusterproxy": taskclusterproxy.New, "mounts": mounts.New,
		"chainoftrust": chainoftrust.New, "interactive": interactive.New}
	c, ok := ctors[name]
	if !ok {
		t.Fatalf("profile links plugin %s that workerit does not know", name)
	}
	return func(o plugins.Options) (plugins.Plugin, error) {
		p, err := c(o)
		if err == nil {
			e.mu.Lock()
			e.plugins[name] = p
			e.mu.Unlock()
		}
		return p, err
	}
}

// Plugin returns the worker's plugin name.
func (e *Env) Plugin(name string) plugins.Plugin {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.plugins[name]
}

// CreateTask creates a task with payload in the worker's pool.
func (e *Env) CreateTask(payload map[string]any, scopes ...string) string {
	e.T.Helper()
	id := worker.NewSlugID()
	now := time.Now().UTC()
	if scopes == nil {
		scopes = []string{}
	}
	def := map[string]any{
		"taskQueueId": e.Pool, "schedulerId": "tests", "taskGroupId": id, "scopes": scopes, "dependencies": []string{},
		"created": now.Format(time.RFC3339Nano), "deadline": now.Add(time.Hour).Format(time.RFC3339Nano),
		"expires":  now.Add(48 * time.Hour).Format(time.RFC3339Nano),
		"payload":  payload,
		"metadata": map[string]string{"name": "it", "description": "d", "owner": "o@example.com", "source": "https://example.com"},
	}
	if _, err := e.Server.CreateTaskJSON(context.Background(), id, def); err != nil {
		e.T.Fatal(err)
	}
	return id
}

// Work runs the worker until it has run n tasks (or ctx ends).
func (e *Env) Work(ctx context.Context, n int) error {
	cfg := *e.Config
	cfg.NumberOfTasksToRun = n
	w := &worker.Worker{Runner: e.Runner, Config: &cfg, Client: e.Client, ClaimPollInterval: 50 * time.Millisecond}
	return w.Work(ctx)
}

// Resolution is "completed", "failed" or "exception/<reason>" for the last
// run of id.
func (e *Env) Resolution(id string) string {
	st, err := e.Server.Status(id)
	if err != nil || len(st.Runs) == 0 {
		return fmt.Sprintf("<no run: %v>", err)
	}
	r := st.Runs[len(st.Runs)-1]
	if r.State == "exception" {
		return r.State + "/" + r.ReasonResolved
	}
	return r.State
}

// Download fetches an artifact of run 0 through queue.getArtifact and the
// URL it redirects to (content decoded).
func (e *Env) Download(ctx context.Context, taskID, name string) ([]byte, error) {
	resp, err := e.Client.Queue().DownloadArtifact(ctx, taskID, 0, name)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

// Log is the task's backing log.
func (e *Env) Log(taskID string) string {
	b, err := e.Download(context.Background(), taskID, "public/logs/live_backing.log")
	if err != nil {
		return fmt.Sprintf("<no log: %v>", err)
	}
	return string(b)
}

func repoRoot(t testing.TB) string {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found")
		}
		dir = parent
	}
}
