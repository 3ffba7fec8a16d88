package container

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/engines/container/daemontest"
	"github.com/workergen/workergen/task"
)

// Tests that need a daemon read its socket from WORKERGEN_PODMAN_SOCKET
// (set up by .ci/podman-setup.sh, which also writes it to
// /run/workergen-podman.env) and skip without one.
const envFile = "/run/workergen-podman.env"

func testEnv(name string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	f, err := os.Open(envFile)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok && k == name {
			return v
		}
	}
	return ""
}

func podmanSocket(t testing.TB) string {
	t.Helper()
	s := testEnv("WORKERGEN_PODMAN_SOCKET")
	if s == "" {
		t.Skip("no container daemon: set WORKERGEN_PODMAN_SOCKET (run .ci/podman-setup.sh as root to get Podman's API service)")
	}
	return s
}

func testImage(t testing.TB) string {
	if s := testEnv("WORKERGEN_TEST_IMAGE"); s != "" {
		return s
	}
	return "localhost:5000/workergen/busybox:latest"
}

var testSeq struct {
	sync.Mutex
	n int
}

func uniqueID(prefix string) string {
	testSeq.Lock()
	defer testSeq.Unlock()
	testSeq.n++
	return fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), testSeq.n)
}

// newTestEngine returns an engine on Podman (or the daemon named by
// WORKERGEN_TEST_DAEMON: "docker" runs the single-daemon tests against
// Docker) with its own worker identity, so tests never see each other's
// leftovers.
func newTestEngine(t testing.TB, cfg map[string]any, opts ...Option) *Engine {
	t.Helper()
	if d := os.Getenv("WORKERGEN_TEST_DAEMON"); d != "" && d != "podman" {
		return newTestEngineOn(t, daemontest.ByName(d), cfg, opts...)
	}
	podmanSocket(t)
	return newTestEngineOn(t, daemontest.ByName("podman"), cfg, opts...)
}

// newTestEngineOn is newTestEngine on daemon d.
func newTestEngineOn(t testing.TB, d daemontest.Daemon, cfg map[string]any, opts ...Option) *Engine {
	t.Helper()
	daemontest.Require(t, d)
	sock := d.Socket
	if cfg == nil {
		cfg = map[string]any{}
	}
	cfg["socket"] = sock
	if _, ok := cfg["imageGC"]; !ok {
		// CI machines may have little free disk: only the GC test collects.
		cfg["imageGC"] = map[string]any{"disabled": true}
	}
	raw, _ := json.Marshal(cfg)
	e, err := NewEngine(engines.Options{
		Config: raw,
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Worker: task.WorkerInfo{WorkerPoolID: "workergen-test/container", WorkerGroup: "test", WorkerID: uniqueID("worker"), Profile: d.Profile, Engine: "container"},
	}, opts...)
	if err != nil {
		t.Fatalf("NewEngine: %v", err)
	}
	t.Cleanup(func() {
		// Runs after the test's own clean-ups (results disposed): remove
		// this worker's cache volumes once its containers are gone.
		e.bg.Wait()
		f := e.workerFilter()
		f.Add("label", LabelCache)
		if list, err := e.cli.VolumeList(context.Background(), client.VolumeListOptions{Filters: f}); err == nil {
			for _, v := range list.Items {
				e.cli.VolumeRemove(context.Background(), v.Name, client.VolumeRemoveOptions{Force: true})
			}
		}
		e.Close()
	})
	return e
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type testRun struct {
	tc  *task.Context
	log *syncBuffer
}

// newRun returns a task.Context for payload (marshalled to JSON).
func newRun(t testing.TB, e *Engine, payload any, scopes ...string) *testRun {
	t.Helper()
	raw, err := json.Marshal(payload)
	if err != nil {
		t.Fatal(err)
	}
	buf := &syncBuffer{}
	tc := &task.Context{
		TaskID: uniqueID("Task"),
		Definition: task.Definition{
			Payload: raw,
			Scopes:  scopes,
		},
		Worker:  e.worker,
		TaskDir: t.TempDir(),
		Log:     task.NewLog(buf),
		Logger:  slog.New(slog.NewTextHandler(testWriter{t}, nil)),
		Started: time.Now(),
	}
	return &testRun{tc: tc, log: buf}
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// runTask builds, starts and waits for a task; the result is disposed at
// test cleanup.
func runTask(t testing.TB, e *Engine, r *testRun, env map[string]string) engines.ResultSet {
	t.Helper()
	ctx := testCtx(t)
	b, err := e.NewSandboxBuilder(ctx, r.tc)
	if err != nil {
		t.Fatalf("NewSandboxBuilder: %v", err)
	}
	for k, v := range env {
		if err := b.SetEnv(k, v); err != nil {
			t.Fatalf("SetEnv(%s): %v", k, err)
		}
	}
	s, err := b.Start(ctx)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	res, err := s.Wait(ctx)
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	t.Cleanup(func() {
		if err := res.Dispose(); err != nil {
			t.Errorf("Dispose: %v", err)
		}
	})
	return res
}

func payload(t testing.TB, command ...string) map[string]any {
	return map[string]any{"image": testImage(t), "maxRunTime": 600, "command": command}
}

var containerInspectOpts = client.ContainerInspectOptions{}
