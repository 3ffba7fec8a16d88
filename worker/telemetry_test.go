package worker

import (
	"bufio"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/plugins"
	"github.com/workergen/workergen/worker/metrics/metricstest"
	"github.com/workergen/workergen/worker/workerproto/runnertest"
)

// telemetryBuild is a Build of the fake engine and the artifact test
// plugin with the linux-native profile's config schema and defaults, so
// that `work --config FILE` runs in this process end to end.
func telemetryBuild(t *testing.T) (Build, *fakeEngine) {
	t.Helper()
	b := linuxNativeBuild(t)
	eng := newFakeEngine()
	b.Engine = EngineEntry{Name: "fake", New: func(engines.Options) (engines.Engine, error) { return eng, nil }}
	b.Plugins = []PluginEntry{{Name: "artifact", New: func(plugins.Options) (plugins.Plugin, error) { return artifactPlugin{}, nil }}}
	b.PayloadSchema = []byte(fakeSchema)
	return b, eng
}

// writeWorkConfig writes a workergen config claiming from env's Queue with
// extra settings over it and returns its path.
func writeWorkConfig(t *testing.T, env *queueEnv, extra map[string]any) string {
	t.Helper()
	cfg := map[string]any{
		"rootUrl": env.http.URL, "credentials": map[string]string{"clientId": "worker", "accessToken": "worker-token"},
		"workerPoolId": testPool, "workerGroup": "test-group", "workerId": "w1",
		"tasksDir": filepath.Join(t.TempDir(), "tasks"), "shutdownGracePeriod": 0,
	}
	for k, v := range extra {
		cfg[k] = v
	}
	data, err := json.Marshal(cfg)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "worker.json")
	require.NoError(t, os.WriteFile(path, data, 0o644))
	return path
}

// jsonLines parses every line of s as a JSON object with time, level and
// msg (slog's JSON handler).
func jsonLines(t *testing.T, what, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var rec map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &rec), "%s line is JSON: %s", what, sc.Text())
		for _, k := range []string{"time", "level", "msg"} {
			require.Contains(t, rec, k, "%s line: %s", what, sc.Text())
		}
		_, err := time.Parse(time.RFC3339Nano, rec["time"].(string))
		require.NoError(t, err)
		out = append(out, rec)
	}
	return out
}

// find returns the first record with message msg whose attributes include
// attrs (key, value pairs), or nil.
func find(recs []map[string]any, msg string, attrs ...any) map[string]any {
next:
	for _, r := range recs {
		if r["msg"] != msg {
			continue
		}
		for i := 0; i+1 < len(attrs); i += 2 {
			if r[attrs[i].(string)] != attrs[i+1] {
				continue next
			}
		}
		return r
	}
	return nil
}

// metricsURL waits for the worker's "serving Prometheus metrics" line in
// the JSON log file at path and returns its url.
func metricsURL(t *testing.T, path string, exited <-chan int) string {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
		data, _ := os.ReadFile(path)
		for line := range strings.Lines(string(data)) {
			var rec struct{ Msg, URL string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "serving Prometheus metrics" {
				return rec.URL
			}
		}
		select {
		case code := <-exited:
			t.Fatalf("worker exited with %d before serving metrics; log:\n%s", code, data)
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatal("no metrics endpoint logged")
	return ""
}

// scrapeMetrics GETs the metrics endpoint and parses the text exposition
// format.
func scrapeMetrics(t *testing.T, url string) metricstest.Families { return metricstest.Scrape(t, url) }

// metricValue is the value of the series of name with labels (pairs), a
// histogram's sample count, or -1 when there is none.
func metricValue(fams metricstest.Families, name string, labels ...string) float64 {
	if v, ok := fams.Value(name, labels...); ok {
		return v
	}
	return -1
}

// waitFor polls cond until it holds (or fails the test after a generous
// minute, or when the worker exits).
func waitFor(t *testing.T, what string, exited <-chan int, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		select {
		case code := <-exited:
			t.Fatalf("worker exited with %d while waiting for %s", code, what)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// TestWorkTelemetry runs `work --config FILE -v` with logFormat json, a
// logFile and metrics.listen on a free port against the embedded Queue
// (real HTTP with Hawk): a completed task with an artifact, a failed one,
// a malformed one, and one that runs until the Queue cancels it. A scrape
// of /metrics while the last one runs shows the counters moved; every
// line of stderr and of the log file is a JSON record, the two are the
// same, and -v wrote the debug lines of each stage.
func TestWorkTelemetry(t *testing.T) {
	env := newQueueEnv(t, 4*time.Second)
	ok := env.createTask(`{"output": "hi\n", "file": "some artifact content"}`, 0)
	failed := env.createTask(`{"exit": 2}`, 0)
	malformed := env.createTask(`{"exit": "two"}`, 0)
	blocking := env.createTask(`{"block": true}`, 0)
	logPath := filepath.Join(t.TempDir(), "worker.log")
	path := writeWorkConfig(t, env, map[string]any{"numberOfTasksToRun": 4, "logFormat": "json", "logFile": logPath,
		"metrics": map[string]any{"listen": "127.0.0.1:0"}})
	b, _ := telemetryBuild(t)
	var stdout, stderr lockedBuffer
	exited := make(chan int, 1)
	go func() { exited <- MainArgs(b, []string{"work", "--config", path, "-v"}, &stdout, &stderr) }()

	url := metricsURL(t, logPath, exited)
	waitFor(t, "three runs resolved and the fourth running", exited, func() bool {
		return runState(env.status(ok), 0) == "completed" && runState(env.status(failed), 0) == "failed" &&
			runState(env.status(malformed), 0) == "exception/malformed-payload" && runState(env.status(blocking), 0) == "running"
	})
	// Claims last 4 s and are renewed half-way: wait for a reclaim.
	var fams map[string]*dto.MetricFamily
	waitFor(t, "a reclaimTask in the metrics", exited, func() bool {
		fams = scrapeMetrics(t, url)
		return metricValue(fams, "workergen_reclaim_task_duration_seconds") >= 1
	})
	assert.Equal(t, 4.0, metricValue(fams, "workergen_tasks_claimed_total"))
	assert.Equal(t, 1.0, metricValue(fams, "workergen_tasks_resolved_total", "state", "completed", "reason", "completed"))
	assert.Equal(t, 1.0, metricValue(fams, "workergen_tasks_resolved_total", "state", "failed", "reason", "failed"))
	assert.Equal(t, 1.0, metricValue(fams, "workergen_tasks_resolved_total", "state", "exception", "reason", "malformed-payload"))
	assert.Equal(t, 1.0, metricValue(fams, "workergen_task_duration_seconds", "state", "completed"))
	assert.Equal(t, 1.0, metricValue(fams, "workergen_task_duration_seconds", "state", "exception"))
	assert.Equal(t, 1.0, metricValue(fams, "workergen_tasks_running"))
	assert.Equal(t, 1.0, metricValue(fams, "workergen_capacity"))
	assert.Equal(t, 1.0, metricValue(fams, "workergen_artifact_uploads_total", "storage_type", "s3"))
	assert.Greater(t, metricValue(fams, "workergen_artifact_upload_bytes_total", "storage_type", "s3"), 0.0)
	assert.GreaterOrEqual(t, metricValue(fams, "workergen_claim_work_duration_seconds", "outcome", "tasks"), 1.0)
	assert.Equal(t, -1.0, metricValue(fams, "workergen_reclaim_task_failures_total"), "no failure series yet")
	assert.Equal(t, 1.0, metricValue(fams, "workergen_build_info", "profile", "linux-native", "engine", "fake"))
	assert.Contains(t, fams, "go_goroutines")
	assert.Contains(t, fams, "process_cpu_seconds_total")

	// The Queue takes the last run back; numberOfTasksToRun is reached.
	_, err := env.server.Cancel(blocking)
	require.NoError(t, err)
	select {
	case code := <-exited:
		require.Equal(t, ExitCompleted, code, "stderr:\n%s", stderr.String())
	case <-time.After(time.Minute):
		t.Fatal("worker did not exit")
	}
	_, err = http.Get(url)
	assert.Error(t, err, "the metrics endpoint closes with the worker")

	data, err := os.ReadFile(logPath)
	require.NoError(t, err)
	assert.Equal(t, stderr.String(), string(data), "logFile receives what stderr does")
	recs := jsonLines(t, "logFile", string(data))
	require.NotEmpty(t, recs)
	assert.Equal(t, "worker starting", recs[0]["msg"], "the first line is the worker's identity and paths, before the metrics endpoint's")
	assert.NotNil(t, find(recs, "claimWork answered", "claimed", 1.0), "debug line of a claimWork answer")
	assert.NotNil(t, find(recs, "stage started", "stage", "Wait", "taskId", ok))
	assert.NotNil(t, find(recs, "stage ended", "stage", "Stopped", "taskId", ok))
	assert.Contains(t, find(recs, "stage ended", "stage", "CheckPayload", "taskId", malformed), "error")
	up := find(recs, "artifact uploaded", "taskId", ok, "name", "public/with space+plus.txt")
	require.NotNil(t, up)
	assert.Equal(t, "gzip", up["encoding"])
	assert.Equal(t, "s3", up["storageType"])
	assert.Greater(t, up["bytes"], 0.0)
	assert.Contains(t, up, "duration")
	assert.NotNil(t, find(recs, "reclaimed", "taskId", blocking))
	assert.NotNil(t, find(recs, "reporting resolution", "taskId", failed, "resolution", "failed"))
	assert.NotNil(t, find(recs, "resolved", "taskId", ok, "resolution", "completed"))
	assert.NotNil(t, find(recs, "reclaimTask answered 409: the Queue no longer has this run running here; stopping the task", "level", "WARN"))
	if t.Failed() {
		t.Logf("log:\n%s", data)
	}
}

// TestWorkTelemetryUnderWorkerRunner: under worker-runner the log goes as
// `log` messages (stderr stays empty) and to logFile as well, and the
// metrics count the protocol's messages, handshake included; logLevel
// debug gives the debug lines -v would.
func TestWorkTelemetryUnderWorkerRunner(t *testing.T) {
	env := newQueueEnv(t, time.Minute)
	id := env.createTask(`{"block": true}`, 1)
	logPath := filepath.Join(t.TempDir(), "worker.log")
	path := writeWorkConfig(t, env, map[string]any{"logFile": logPath, "metrics": map[string]any{"listen": "127.0.0.1:0"}, "logFormat": "json", "shutdownGracePeriod": 60, "logLevel": "debug"})
	b, eng := telemetryBuild(t)
	toWorkerR, toWorkerW := io.Pipe()
	fromWorkerR, fromWorkerW := io.Pipe()
	var stderr lockedBuffer
	exited := make(chan int, 1)
	go func() {
		exited <- serve(b, serveOptions{configPath: path, withRunner: true}, toWorkerR, fromWorkerW, &stderr)
		_ = fromWorkerW.Close()
	}()
	wr, err := runnertest.New(fromWorkerR, toWorkerW, runnertest.Options{})
	require.NoError(t, err)
	url := metricsURL(t, logPath, exited)
	<-eng.started

	fams := scrapeMetrics(t, url)
	assert.Equal(t, 1.0, metricValue(fams, "workergen_worker_runner_messages_total", "direction", "received", "type", "welcome"))
	assert.Equal(t, 1.0, metricValue(fams, "workergen_worker_runner_messages_total", "direction", "sent", "type", "hello"))
	assert.GreaterOrEqual(t, metricValue(fams, "workergen_worker_runner_messages_total", "direction", "sent", "type", "log"), 2.0)
	assert.Equal(t, 1.0, metricValue(fams, "workergen_tasks_running"))

	require.NoError(t, wr.GracefulTermination(false))
	select {
	case code := <-exited:
		assert.Equal(t, ExitGracefulTermination, code)
	case <-time.After(time.Minute):
		t.Fatal("worker did not exit")
	}
	_ = toWorkerW.Close()
	assert.Equal(t, "exception/worker-shutdown", runState(env.status(id), 0))
	assert.Empty(t, stderr.String(), "the log went to worker-runner")
	data, err := os.ReadFile(logPath)
	require.NoError(t, err)
	recs := jsonLines(t, "logFile", string(data))
	assert.NotNil(t, find(recs, "claimed task", "taskId", id))
	assert.NotNil(t, find(recs, "worker-runner asks for graceful termination"))
	assert.NotNil(t, find(recs, "worker-runner message received", "type", "graceful-termination"), "logLevel debug without -v")
	assert.NotNil(t, find(recs, "worker-runner protocol started"))
	assert.NotNil(t, find(recs, "stage started", "stage", "Wait", "taskId", id))
	var logged []string
	for _, m := range wr.Messages("log") {
		body, _ := m["body"].(map[string]any)
		s, _ := body["textPayload"].(string)
		logged = append(logged, s)
	}
	assert.Contains(t, logged, "claimed task", "worker-runner gets the log too")
}

// TestTelemetryConfigErrors: a logFile that cannot be opened and a
// metrics.listen that cannot be listened on stop `work` at start-up with
// ExitInvalidConfig, naming the key; `run TASK_FILE` with such a logFile
// exits ExitInvalidConfig too.
func TestTelemetryConfigErrors(t *testing.T) {
	env := newQueueEnv(t, time.Minute)
	b, _ := telemetryBuild(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer busy.Close()
	missingDir := filepath.Join(t.TempDir(), "no-such-dir", "worker.log")
	for _, c := range []struct {
		extra map[string]any
		want  []string
	}{
		{map[string]any{"logFile": missingDir}, []string{"config.logFile", missingDir, "directory must exist"}},
		{map[string]any{"metrics": map[string]any{"listen": "9100"}}, []string{"config.metrics.listen", `"9100" is not host:port`}},
		{map[string]any{"metrics": map[string]any{"listen": busy.Addr().String()}}, []string{"config.metrics.listen", busy.Addr().String()}},
		{map[string]any{"logFormat": "xml"}, []string{"config.logFormat"}},
		{map[string]any{"logLevel": "verbose"}, []string{"config.logLevel"}},
		{map[string]any{"metrics": map[string]any{"listne": ":9100"}}, []string{"config.metrics", "listne"}},
	} {
		var stdout, stderr lockedBuffer
		code := MainArgs(b, []string{"work", "--config", writeWorkConfig(t, env, c.extra)}, &stdout, &stderr)
		assert.Equal(t, ExitInvalidConfig, code, "%v: %s", c.extra, stderr.String())
		for _, w := range c.want {
			assert.Contains(t, stderr.String(), w, c.extra)
		}
	}

	taskFile := filepath.Join(t.TempDir(), "task.json")
	require.NoError(t, os.WriteFile(taskFile, []byte(`{"payload": {}}`), 0o644))
	cfgPath := filepath.Join(t.TempDir(), "run.json")
	require.NoError(t, os.WriteFile(cfgPath, []byte(`{"logFile": "`+missingDir+`"}`), 0o644))
	var stdout, stderr lockedBuffer
	code := MainArgs(b, []string{"run", "--config", cfgPath, "--output", t.TempDir(), taskFile}, &stdout, &stderr)
	assert.Equal(t, ExitInvalidConfig, code)
	assert.Contains(t, stderr.String(), "config.logFile")
}

// TestRunTaskFileLogsJSONToLogFile: `run TASK_FILE -v` with logFormat
// json and a logFile writes its (debug) log there as JSON.
func TestRunTaskFileLogsJSONToLogFile(t *testing.T) {
	b, _ := telemetryBuild(t)
	dir := t.TempDir()
	taskFile := filepath.Join(dir, "task.json")
	require.NoError(t, os.WriteFile(taskFile, []byte(`{"payload": {"output": "hi\n"}}`), 0o644))
	logPath := filepath.Join(dir, "run.log")
	require.NoError(t, os.WriteFile(logPath, []byte(`{"time":"2026-01-01T00:00:00Z","level":"INFO","msg":"an earlier line"}`+"\n"), 0o600))
	cfgPath := filepath.Join(dir, "run.json")
	require.NoError(t, os.WriteFile(cfgPath, []byte(`{"logFormat": "json", "logFile": "`+logPath+`"}`), 0o644))
	var stdout, stderr lockedBuffer
	code := MainArgs(b, []string{"run", "-v", "--config", cfgPath, "--output", filepath.Join(dir, "out"), taskFile}, &stdout, &stderr)
	require.Equal(t, ExitCompleted, code, stderr.String())
	data, err := os.ReadFile(logPath)
	require.NoError(t, err)
	recs := jsonLines(t, "logFile", string(data))
	assert.Equal(t, "an earlier line", recs[0]["msg"], "the log file is appended to")
	assert.NotNil(t, find(recs, "stage ended", "stage", "Wait"))
	jsonLines(t, "stderr", stderr.String())
}

// TestGenericWorkerConfigCarriesTelemetry: generic-worker's config file
// (as worker-runner writes it from the pool's workerConfig) may carry
// logFormat, logFile and metrics as workergen's own keys.
func TestGenericWorkerConfigCarriesTelemetry(t *testing.T) {
	path := filepath.Join(t.TempDir(), "generic-worker.config")
	require.NoError(t, os.WriteFile(path, []byte(`{"rootURL": "https://tc.example.com", "clientId": "c", "accessToken": "t",
		"provisionerId": "p", "workerType": "b", "workerGroup": "g", "workerId": "w",
		"logFormat": "json", "logFile": "/var/log/workergen.log", "metrics": {"listen": ":9100"}}`), 0o600))
	wc, err := loadWorkerConfig(linuxNativeBuild(t), path, nil)
	require.NoError(t, err)
	assert.Equal(t, FormatGenericWorker, wc.Format)
	assert.Equal(t, "json", wc.LogFormat)
	assert.Equal(t, "/var/log/workergen.log", wc.LogFile)
	assert.Equal(t, ":9100", wc.Metrics.Listen)
}

// TestLogFileKeepsStderrOrder: lines logged at once by several goroutines
// (a run's resolution while the next run starts) reach logFile in the
// order they reach stderr, so the file is a copy of stderr.
func TestLogFileKeepsStderrOrder(t *testing.T) {
	var stderr strings.Builder
	path := filepath.Join(t.TempDir(), "worker.log")
	log, closeLog, err := newLogger(&stderr, slog.LevelInfo, logConfig{Format: "json", File: path})
	require.NoError(t, err)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := log.With("goroutine", g)
			for i := range 300 {
				l.Info("line", "i", i)
			}
		}()
	}
	wg.Wait()
	closeLog()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, stderr.String(), string(data), "logFile receives what stderr does, in the same order")
}
