//go:build linux || darwin

package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/workergen/workergen/worker/metrics/metricstest"
)

// TestMetricsAndJSONLog: the linux-native binary with metrics.listen on a
// free port, logFormat json and a logFile. While its third task runs, a
// scrape of /metrics (parsed as Prometheus' text format) shows the two
// finished runs resolved, the log and artifact bytes uploaded and one run
// running; every line of the log file is a JSON record.
func TestMetricsAndJSONLog(t *testing.T) {
	e := newEnv(t, 4*time.Second)
	completed := e.task(map[string]any{"command": sh("echo hello"), "maxRunTime": 30}, 0)
	failed := e.task(map[string]any{"command": sh("exit 7"), "maxRunTime": 30}, 0)
	running := e.task(map[string]any{"command": sh("sleep 120"), "maxRunTime": 300}, 0)
	logPath := filepath.Join(t.TempDir(), "worker.log")
	cmd, out := e.start(map[string]any{"numberOfTasksToRun": 3, "logFormat": "json", "logFile": logPath,
		"metrics": map[string]any{"listen": "127.0.0.1:0"}})

	var url string
	eventually(t, "the metrics URL in the log file", func() bool {
		data, _ := os.ReadFile(logPath)
		for line := range strings.Lines(string(data)) {
			var rec struct{ Msg, URL string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "serving Prometheus metrics" {
				url = rec.URL
			}
		}
		return url != ""
	})
	eventually(t, "two runs resolved and the third running", func() bool {
		return e.runState(completed, 0) == "completed" && e.runState(failed, 0) == "failed" && e.runState(running, 0) == "running"
	})
	fams := metricstest.Scrape(t, url)
	value := func(name string, labels ...string) float64 {
		v, ok := fams.Value(name, labels...)
		if !ok {
			t.Errorf("no series %s%v", name, labels)
		}
		return v
	}
	assert.Equal(t, 3.0, value("workergen_tasks_claimed_total"))
	assert.Equal(t, 1.0, value("workergen_tasks_resolved_total", "state", "completed", "reason", "completed"))
	assert.Equal(t, 1.0, value("workergen_tasks_resolved_total", "state", "failed", "reason", "failed"))
	assert.Equal(t, 1.0, value("workergen_task_duration_seconds", "state", "completed"))
	assert.Equal(t, 1.0, value("workergen_task_duration_seconds", "state", "failed"))
	assert.Equal(t, 1.0, value("workergen_tasks_running"))
	assert.GreaterOrEqual(t, value("workergen_artifact_uploads_total", "storage_type", "s3"), 2.0, "the task logs at least")
	assert.Greater(t, value("workergen_artifact_upload_bytes_total", "storage_type", "s3"), 0.0)
	assert.Equal(t, 1.0, value("workergen_build_info", "profile", "linux-native", "version", "0.0.0-it"))
	assert.Contains(t, fams, "process_resident_memory_bytes")

	_, err := e.queue.Cancel(running)
	require.NoError(t, err)
	e.wait(cmd, out)
	data, err := os.ReadFile(logPath)
	require.NoError(t, err)
	n := 0
	for line := range strings.Lines(string(data)) {
		var rec map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &rec), line)
		for _, k := range []string{"time", "level", "msg"} {
			assert.Contains(t, rec, k, line)
		}
		n++
	}
	assert.Greater(t, n, 5)
}
