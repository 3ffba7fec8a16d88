package metrics

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/workergen/workergen/worker/metrics/metricstest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// scrape GETs url and parses Prometheus' text exposition format.
func scrape(t *testing.T, url string) metricstest.Families { return metricstest.Scrape(t, url) }

// value returns the value of the series of family name whose labels
// include labels (name=value pairs); a histogram's is its sample count.
func value(t *testing.T, fams metricstest.Families, name string, labels ...string) float64 {
	t.Helper()
	v, ok := fams.Value(name, labels...)
	if !ok {
		t.Fatalf("no series %s%v", name, labels)
	}
	return v
}

func TestNilRecorderRecordsNothing(t *testing.T) {
	var r *Recorder
	r.SetCapacity(2)
	r.ClaimWork(time.Second, 1, 0, nil)
	r.ReclaimTask(time.Second, 500, errors.New("x"))
	r.TaskRunning()()
	r.TaskResolved("completed", "completed", time.Second)
	r.ArtifactUploaded("s3", 10)
	r.RunnerMessages(func(func(string, string, uint64)) {})
	var b bytes.Buffer
	r.WritePrometheus(&b)
	assert.Zero(t, b.Len())
}

func TestServeExposesEveryMetric(t *testing.T) {
	r := New(Info{Version: "1.2.3", Profile: "linux-native", Engine: "native"})
	r.SetCapacity(4)
	r.ClaimWork(30*time.Millisecond, 2, 0, nil)
	r.ClaimWork(20*time.Second, 0, 0, nil)
	r.ClaimWork(time.Second, 0, 503, errors.New("unavailable"))
	r.ClaimWork(time.Second, 0, 0, errors.New("connection refused"))
	r.ReclaimTask(10*time.Millisecond, 0, nil)
	r.ReclaimTask(10*time.Millisecond, 409, errors.New("conflict"))
	done := r.TaskRunning()
	r.TaskRunning()
	done()
	done() // a second call changes nothing
	r.TaskResolved("exception", "malformed-payload", 3*time.Second)
	r.TaskResolved("completed", "completed", 90*time.Second)
	r.ArtifactUploaded("s3", 1000)
	r.ArtifactUploaded("s3", 24)
	r.ArtifactUploaded("object", 7)
	r.RunnerMessages(func(count func(string, string, uint64)) {
		count("received", "welcome", 1)
		count("sent", "log", 42)
	})

	srv, err := r.Serve("127.0.0.1:0", nil)
	require.NoError(t, err)
	defer srv.Close()
	fams := scrape(t, srv.URL())

	assert.Equal(t, 2.0, value(t, fams, "workergen_tasks_claimed_total"))
	assert.Equal(t, 1.0, value(t, fams, "workergen_claim_work_duration_seconds", "outcome", "tasks"))
	assert.Equal(t, 1.0, value(t, fams, "workergen_claim_work_duration_seconds", "outcome", "empty"))
	assert.Equal(t, 2.0, value(t, fams, "workergen_claim_work_duration_seconds", "outcome", "failed"))
	assert.Equal(t, 1.0, value(t, fams, "workergen_claim_work_failures_total", "code", "503"))
	assert.Equal(t, 1.0, value(t, fams, "workergen_claim_work_failures_total", "code", "none"))
	assert.Equal(t, 2.0, value(t, fams, "workergen_reclaim_task_duration_seconds"))
	assert.Equal(t, 1.0, value(t, fams, "workergen_reclaim_task_failures_total", "code", "409"))
	assert.Equal(t, 1.0, value(t, fams, "workergen_tasks_running"))
	assert.Equal(t, 4.0, value(t, fams, "workergen_capacity"))
	assert.Equal(t, 1.0, value(t, fams, "workergen_tasks_resolved_total", "state", "exception", "reason", "malformed-payload"))
	assert.Equal(t, 1.0, value(t, fams, "workergen_tasks_resolved_total", "state", "completed", "reason", "completed"))
	assert.Equal(t, 0.0, value(t, fams, "workergen_tasks_resolved_total", "state", "failed", "reason", "failed"), "present at zero")
	assert.Equal(t, 1.0, value(t, fams, "workergen_task_duration_seconds", "state", "completed"))
	assert.Equal(t, 0.0, value(t, fams, "workergen_task_duration_seconds", "state", "failed"), "present at zero")
	assert.Equal(t, 1024.0, value(t, fams, "workergen_artifact_upload_bytes_total", "storage_type", "s3"))
	assert.Equal(t, 2.0, value(t, fams, "workergen_artifact_uploads_total", "storage_type", "s3"))
	assert.Equal(t, 7.0, value(t, fams, "workergen_artifact_upload_bytes_total", "storage_type", "object"))
	assert.Equal(t, 42.0, value(t, fams, "workergen_worker_runner_messages_total", "direction", "sent", "type", "log"))
	assert.Equal(t, 1.0, value(t, fams, "workergen_worker_runner_messages_total", "direction", "received", "type", "welcome"))
	assert.Equal(t, 1.0, value(t, fams, "workergen_build_info", "version", "1.2.3", "profile", "linux-native", "engine", "native"))
	// The go_ and process_ series the README's Telemetry table names.
	for _, name := range []string{"go_goroutines", "go_threads", "go_info", "go_memstats_heap_inuse_bytes", "go_gc_duration_seconds",
		"process_resident_memory_bytes", "process_cpu_seconds_total", "process_cpu_seconds_user_total", "process_cpu_seconds_system_total",
		"process_start_time_seconds", "process_open_fds", "process_max_fds"} {
		assert.Contains(t, fams, name)
	}
	assert.Greater(t, value(t, fams, "process_resident_memory_bytes"), 0.0)
	assert.Greater(t, value(t, fams, "process_open_fds"), 0.0)

	// Every workergen_ family is typed and explained.
	types := map[string]dto.MetricType{
		"workergen_tasks_claimed_total": dto.MetricType_COUNTER, "workergen_claim_work_duration_seconds": dto.MetricType_HISTOGRAM,
		"workergen_claim_work_failures_total": dto.MetricType_COUNTER, "workergen_reclaim_task_duration_seconds": dto.MetricType_HISTOGRAM,
		"workergen_reclaim_task_failures_total": dto.MetricType_COUNTER, "workergen_tasks_resolved_total": dto.MetricType_COUNTER,
		"workergen_task_duration_seconds": dto.MetricType_HISTOGRAM, "workergen_tasks_running": dto.MetricType_GAUGE,
		"workergen_capacity": dto.MetricType_GAUGE, "workergen_artifact_upload_bytes_total": dto.MetricType_COUNTER,
		"workergen_artifact_uploads_total": dto.MetricType_COUNTER, "workergen_worker_runner_messages_total": dto.MetricType_COUNTER,
		"workergen_build_info": dto.MetricType_GAUGE,
	}
	for name, f := range fams {
		if !strings.HasPrefix(name, "workergen_") {
			continue
		}
		want, ok := types[name]
		if assert.True(t, ok, "unexpected family %s", name) {
			assert.Equal(t, want, f.GetType(), name)
		}
		assert.NotEmpty(t, f.GetHelp(), name)
	}
	assert.Len(t, fams["workergen_tasks_claimed_total"].GetMetric(), 1)

	// The task duration histogram has buckets in seconds up to a day.
	h := fams["workergen_task_duration_seconds"].GetMetric()
	var completed *dto.Histogram
	for _, m := range h {
		if m.GetLabel()[0].GetValue() == "completed" {
			completed = m.GetHistogram()
		}
	}
	require.NotNil(t, completed)
	assert.Equal(t, 90.0, completed.GetSampleSum())
	var bounds []float64
	var counts []uint64
	for _, b := range completed.GetBucket() {
		bounds = append(bounds, b.GetUpperBound())
		counts = append(counts, b.GetCumulativeCount())
	}
	assert.Equal(t, append(append([]float64{}, taskBuckets...), math.Inf(1)), bounds, "le buckets in seconds up to a day, then +Inf")
	assert.Equal(t, []uint64{0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, counts, "90 s falls in le=120 and above (cumulative)")

	// Only /metrics is served.
	resp, err := http.Get("http://" + srv.Addr().String() + "/")
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
}

func TestServeBadListenNamesTheKey(t *testing.T) {
	r := New(Info{})
	_, err := r.Serve("9100", nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "config.metrics.listen")
	assert.Contains(t, err.Error(), `"9100" is not host:port`)

	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer busy.Close()
	_, err = r.Serve(busy.Addr().String(), nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "config.metrics.listen")
	assert.Contains(t, err.Error(), busy.Addr().String())
}

// TestConcurrentRecording: goroutines record new and existing series while
// the exposition is written; every event is counted once.
func TestConcurrentRecording(t *testing.T) {
	r := New(Info{})
	const workers, events = 4, 200
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range events {
				r.TaskResolved("exception", fmt.Sprintf("reason-%d", i%5), time.Second)
				r.ClaimWork(time.Millisecond, 0, 500+w, errors.New("x"))
				r.ArtifactUploaded("object", 3)
			}
		})
	}
	wg.Go(func() {
		for range 20 {
			r.WritePrometheus(io.Discard)
		}
	})
	wg.Wait()
	var b bytes.Buffer
	r.WritePrometheus(&b)
	fams := metricstest.Parse(t, &b)
	assert.Equal(t, float64(workers*events/5), value(t, fams, "workergen_tasks_resolved_total", "state", "exception", "reason", "reason-3"))
	assert.Equal(t, float64(workers*events), value(t, fams, "workergen_task_duration_seconds", "state", "exception"))
	assert.Equal(t, float64(events), value(t, fams, "workergen_claim_work_failures_total", "code", "502"))
	assert.Equal(t, float64(workers*events*3), value(t, fams, "workergen_artifact_upload_bytes_total", "storage_type", "object"))
}

// TestSeriesEscapesLabelValues: a label value with a quote, a backslash or
// a newline stays one valid series.
func TestSeriesEscapesLabelValues(t *testing.T) {
	assert.Equal(t, `m{a="x\"y\\z\nw",b="2"}`, series("m", "a", "x\"y\\z\nw", "b", "2"))
	assert.Equal(t, "m", series("m"))
	r := New(Info{Version: "1.0 \"beta\"\nnext"})
	var b bytes.Buffer
	r.WritePrometheus(&b)
	fams := metricstest.Parse(t, &b)
	assert.Equal(t, 1.0, value(t, fams, "workergen_build_info", "version", "1.0 \"beta\"\nnext"))
}
