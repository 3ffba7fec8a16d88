// Package metrics is the claiming worker's Prometheus telemetry: a
// Recorder the claim loop, the artifact uploads and the worker-runner
// session report to, and an HTTP listener serving it at /metrics in
// Prometheus' text exposition format (config `metrics.listen`).
//
// A nil *Recorder records nothing: every method is a no-op, so a worker
// without `metrics.listen` pays one nil check per event. Metric names
// follow Prometheus' conventions (base units, _total for counters, the
// workergen_ prefix); the README's "Telemetry" section lists them with
// their labels and example queries. Label values are bounded: Taskcluster
// resolution states and reasons, storage types, HTTP status codes,
// worker-runner message types.
package metrics

import (
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Info identifies the worker in workergen_build_info.
type Info struct {
	Version string // the worker's version, e.g. "1.2.3" or "0.0.0-dev"
	Profile string // the profile name, e.g. "linux-native"
	Engine  string // the engine's name, e.g. "native"
}

// Recorder holds the worker's metrics in a registry of its own (with the
// Go runtime's and the process' collectors). Its methods are safe for
// concurrent use and for a nil receiver.
type Recorder struct {
	reg *prometheus.Registry

	claimed          prometheus.Counter
	claimDuration    *prometheus.HistogramVec // by outcome
	claimFailures    *prometheus.CounterVec   // by code
	reclaimDuration  prometheus.Histogram
	reclaimFailures  *prometheus.CounterVec   // by code
	resolved         *prometheus.CounterVec   // by state, reason
	taskDuration     *prometheus.HistogramVec // by state
	running          prometheus.Gauge
	capacity         prometheus.Gauge
	uploadedBytes    *prometheus.CounterVec // by storage_type
	uploadedArtifact *prometheus.CounterVec // by storage_type

	runnerOnce sync.Once
}

// Bucket upper bounds, in seconds.
var (
	// queueCallBuckets cover a Queue call from a fast answer on a LAN to
	// claimWork's long poll (20 s on Taskcluster) and the client's retries.
	queueCallBuckets = []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120}
	// taskBuckets cover a task from a second to the default maxRunTime
	// cap (86400 s).
	taskBuckets = []float64{1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800, 43200, 86400}
)

// New returns a Recorder with its workergen_ series at zero (so that
// dashboards see them before the first event; the failure counters, whose
// code labels are not known in advance, and the worker-runner messages
// appear with their first event), build info from info, and the go_ and
// process_ collectors.
func New(info Info) *Recorder {
	reg := prometheus.NewRegistry()
	f := func(c prometheus.Collector) { reg.MustRegister(c) }
	r := &Recorder{reg: reg}
	r.claimed = prometheus.NewCounter(prometheus.CounterOpts{Name: "workergen_tasks_claimed_total",
		Help: "Task runs claimed with claimWork."})
	r.claimDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "workergen_claim_work_duration_seconds",
		Help: "claimWork calls, long poll included, by outcome (tasks: some claimed, empty: none, failed: an error).", Buckets: queueCallBuckets},
		[]string{"outcome"})
	r.claimFailures = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "workergen_claim_work_failures_total",
		Help: "claimWork calls that failed, by HTTP status code (none: no answer)."}, []string{"code"})
	r.reclaimDuration = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "workergen_reclaim_task_duration_seconds",
		Help: "reclaimTask calls, failed ones included.", Buckets: queueCallBuckets})
	r.reclaimFailures = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "workergen_reclaim_task_failures_total",
		Help: "reclaimTask calls that failed, by HTTP status code (none: no answer; 409: the Queue took the run back)."}, []string{"code"})
	r.resolved = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "workergen_tasks_resolved_total",
		Help: "Task runs this worker resolved, by state (completed, failed, exception) and reasonResolved."}, []string{"state", "reason"})
	r.taskDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "workergen_task_duration_seconds",
		Help: "Task runs from claim to the reported resolution, by state.", Buckets: taskBuckets}, []string{"state"})
	r.running = prometheus.NewGauge(prometheus.GaugeOpts{Name: "workergen_tasks_running",
		Help: "Task runs claimed and not yet resolved."})
	r.capacity = prometheus.NewGauge(prometheus.GaugeOpts{Name: "workergen_capacity",
		Help: "Task runs the worker runs at once (config capacity)."})
	r.uploadedBytes = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "workergen_artifact_upload_bytes_total",
		Help: "Bytes of file artifacts uploaded (as sent: after gzip encoding), by storage type (s3, object)."}, []string{"storage_type"})
	r.uploadedArtifact = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "workergen_artifact_uploads_total",
		Help: "File artifacts uploaded, by storage type (s3, object)."}, []string{"storage_type"})
	build := prometheus.NewGauge(prometheus.GaugeOpts{Name: "workergen_build_info",
		Help:        "Always 1; the worker's version, profile and engine as labels.",
		ConstLabels: prometheus.Labels{"version": info.Version, "profile": info.Profile, "engine": info.Engine}})
	build.Set(1)
	for _, c := range []prometheus.Collector{r.claimed, r.claimDuration, r.claimFailures, r.reclaimDuration, r.reclaimFailures,
		r.resolved, r.taskDuration, r.running, r.capacity, r.uploadedBytes, r.uploadedArtifact, build,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		f(c)
	}
	for _, o := range []string{"tasks", "empty", "failed"} {
		r.claimDuration.WithLabelValues(o)
	}
	for _, s := range []string{"completed", "failed", "exception"} {
		r.taskDuration.WithLabelValues(s)
	}
	r.resolved.WithLabelValues("completed", "completed")
	r.resolved.WithLabelValues("failed", "failed")
	for _, st := range []string{"s3", "object"} {
		r.uploadedBytes.WithLabelValues(st)
		r.uploadedArtifact.WithLabelValues(st)
	}
	return r
}

// Registry returns the registry the metrics are in (nil for a nil
// Recorder), to gather them without HTTP or to register more.
func (r *Recorder) Registry() *prometheus.Registry {
	if r == nil {
		return nil
	}
	return r.reg
}

// SetCapacity records the worker's capacity.
func (r *Recorder) SetCapacity(n int) {
	if r == nil {
		return
	}
	r.capacity.Set(float64(n))
}

// ClaimWork records one claimWork call: how long it took, how many runs it
// claimed, and its failure (err non-nil; code is the HTTP status, 0 for
// none).
func (r *Recorder) ClaimWork(d time.Duration, claimed int, code int, err error) {
	if r == nil {
		return
	}
	outcome := "empty"
	switch {
	case err != nil:
		outcome = "failed"
		r.claimFailures.WithLabelValues(codeLabel(code)).Inc()
	case claimed > 0:
		outcome = "tasks"
		r.claimed.Add(float64(claimed))
	}
	r.claimDuration.WithLabelValues(outcome).Observe(d.Seconds())
}

// ReclaimTask records one reclaimTask call, as ClaimWork does.
func (r *Recorder) ReclaimTask(d time.Duration, code int, err error) {
	if r == nil {
		return
	}
	r.reclaimDuration.Observe(d.Seconds())
	if err != nil {
		r.reclaimFailures.WithLabelValues(codeLabel(code)).Inc()
	}
}

// TaskRunning counts a run as running until the returned function is
// called (once, when the run is over).
func (r *Recorder) TaskRunning() (done func()) {
	if r == nil {
		return func() {}
	}
	r.running.Inc()
	var once sync.Once
	return func() { once.Do(r.running.Dec) }
}

// TaskResolved records a resolution the Queue accepted: state
// ("completed", "failed", "exception"), reason (Taskcluster's
// reasonResolved: "completed", "failed" or the exception's reason) and the
// run's time from claim to resolution.
func (r *Recorder) TaskResolved(state, reason string, d time.Duration) {
	if r == nil {
		return
	}
	r.resolved.WithLabelValues(state, reason).Inc()
	r.taskDuration.WithLabelValues(state).Observe(d.Seconds())
}

// ArtifactUploaded records a file artifact of n bytes (as sent) uploaded
// with storageType ("s3", "object").
func (r *Recorder) ArtifactUploaded(storageType string, n int64) {
	if r == nil {
		return
	}
	r.uploadedArtifact.WithLabelValues(storageType).Inc()
	r.uploadedBytes.WithLabelValues(storageType).Add(float64(n))
}

// RunnerMessages makes each, called at every scrape, the source of
// workergen_worker_runner_messages_total{direction, type}: it calls
// count once per direction ("sent", "received") and message type with
// the number of such messages so far. Only the first call has an effect.
func (r *Recorder) RunnerMessages(each func(count func(direction, msgType string, n uint64))) {
	if r == nil || each == nil {
		return
	}
	r.runnerOnce.Do(func() { r.reg.MustRegister(runnerCollector{each}) })
}

var runnerDesc = prometheus.NewDesc("workergen_worker_runner_messages_total",
	"worker-runner protocol messages, by direction (sent, received) and type.", []string{"direction", "type"}, nil)

// runnerCollector reads the connection's own counts at each scrape, so
// that the handshake, which comes before the Recorder exists, is counted
// too.
type runnerCollector struct {
	each func(count func(direction, msgType string, n uint64))
}

func (c runnerCollector) Describe(ch chan<- *prometheus.Desc) { ch <- runnerDesc }

func (c runnerCollector) Collect(ch chan<- prometheus.Metric) {
	c.each(func(direction, msgType string, n uint64) {
		ch <- prometheus.MustNewConstMetric(runnerDesc, prometheus.CounterValue, float64(n), direction, msgType)
	})
}

func codeLabel(code int) string {
	if code <= 0 {
		return "none"
	}
	return strconv.Itoa(code)
}
