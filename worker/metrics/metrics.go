// Package metrics is the claiming worker's Prometheus telemetry: a
// Recorder the claim loop, the artifact uploads and the worker-runner
// session report to, and an HTTP listener serving it at /metrics in
// Prometheus' text exposition format, version 0.0.4 (config
// `metrics.listen`).
//
// The series are kept by github.com/VictoriaMetrics/metrics (counters,
// gauges, and Prometheus histograms with `le` buckets, `_sum` and
// `_count`), which also writes the Go runtime's `go_*` and the process'
// `process_*` series (from /proc on Linux; the library reports a /proc
// file it cannot read with the standard log package, on stderr). Every
// family has `# TYPE` and `# HELP` lines (the go_ and process_ ones
// without help text).
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
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	vm "github.com/VictoriaMetrics/metrics"
)

// Info identifies the worker in workergen_build_info.
type Info struct {
	Version string // the worker's version, e.g. "1.2.3" or "0.0.0-dev"
	Profile string // the profile name, e.g. "linux-native"
	Engine  string // the engine's name, e.g. "native"
}

// Recorder holds the worker's workergen_ series in a metrics set of its
// own. Its methods are safe for concurrent use and for a nil receiver.
type Recorder struct {
	set *vm.Set

	claimed          *vm.Counter
	claimDuration    map[string]*vm.PrometheusHistogram // by outcome: tasks, empty, failed; never written after New
	claimFailures    *vec[*vm.Counter]                  // by code
	reclaimDuration  *vm.PrometheusHistogram
	reclaimFailures  *vec[*vm.Counter]             // by code
	resolved         *vec[*vm.Counter]             // by state, reason
	taskDuration     *vec[*vm.PrometheusHistogram] // by state
	running          *vm.Gauge
	capacity         *vm.Gauge
	uploadedBytes    *vec[*vm.Counter] // by storage_type
	uploadedArtifact *vec[*vm.Counter] // by storage_type

	runnerMu sync.Mutex
	runner   func(count func(direction, msgType string, n uint64)) // nil until RunnerMessages
}

// Metric names, and their # HELP text.
const (
	mClaimed          = "workergen_tasks_claimed_total"
	mClaimDuration    = "workergen_claim_work_duration_seconds"
	mClaimFailures    = "workergen_claim_work_failures_total"
	mReclaimDuration  = "workergen_reclaim_task_duration_seconds"
	mReclaimFailures  = "workergen_reclaim_task_failures_total"
	mResolved         = "workergen_tasks_resolved_total"
	mTaskDuration     = "workergen_task_duration_seconds"
	mRunning          = "workergen_tasks_running"
	mCapacity         = "workergen_capacity"
	mUploadedBytes    = "workergen_artifact_upload_bytes_total"
	mUploadedArtifact = "workergen_artifact_uploads_total"
	mRunnerMessages   = "workergen_worker_runner_messages_total"
	mBuildInfo        = "workergen_build_info"
)

var help = map[string]string{
	mClaimed:          "Task runs claimed with claimWork.",
	mClaimDuration:    "claimWork calls, long poll included, by outcome (tasks: some claimed, empty: none, failed: an error).",
	mClaimFailures:    "claimWork calls that failed, by HTTP status code (none: no answer).",
	mReclaimDuration:  "reclaimTask calls, failed ones included.",
	mReclaimFailures:  "reclaimTask calls that failed, by HTTP status code (none: no answer; 409: the Queue took the run back).",
	mResolved:         "Task runs this worker resolved, by state (completed, failed, exception) and reasonResolved.",
	mTaskDuration:     "Task runs from claim to the reported resolution, by state.",
	mRunning:          "Task runs claimed and not yet resolved.",
	mCapacity:         "Task runs the worker runs at once (config capacity).",
	mUploadedBytes:    "Bytes of file artifacts uploaded (as sent: after gzip encoding), by storage type (s3, object).",
	mUploadedArtifact: "File artifacts uploaded, by storage type (s3, object).",
	mRunnerMessages:   "worker-runner protocol messages, by direction (sent, received) and type.",
	mBuildInfo:        "Always 1; the worker's version, profile and engine as labels.",
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
// appear with their first event) and build info from info.
//
// It turns on the # HELP and # TYPE lines of github.com/VictoriaMetrics/metrics
// (vm.ExposeMetadata, a process-wide setting) so that scrapers see
// counters, gauges and histograms, not untyped series.
func New(info Info) *Recorder {
	vm.ExposeMetadata(true)
	s := vm.NewSet()
	r := &Recorder{
		set:             s,
		claimed:         s.NewCounter(mClaimed),
		claimDuration:   map[string]*vm.PrometheusHistogram{},
		reclaimDuration: s.NewPrometheusHistogramExt(mReclaimDuration, queueCallBuckets),
		running:         s.NewGauge(mRunning, nil),
		capacity:        s.NewGauge(mCapacity, nil),
	}
	for _, o := range []string{"tasks", "empty", "failed"} {
		r.claimDuration[o] = s.NewPrometheusHistogramExt(series(mClaimDuration, "outcome", o), queueCallBuckets)
	}
	counters := func(name string, labels ...string) *vec[*vm.Counter] {
		return newVec(func(v [2]string) *vm.Counter { return s.GetOrCreateCounter(series(name, labelPairs(labels, v)...)) })
	}
	r.claimFailures = counters(mClaimFailures, "code")
	r.reclaimFailures = counters(mReclaimFailures, "code")
	r.resolved = counters(mResolved, "state", "reason")
	r.uploadedBytes = counters(mUploadedBytes, "storage_type")
	r.uploadedArtifact = counters(mUploadedArtifact, "storage_type")
	r.taskDuration = newVec(func(v [2]string) *vm.PrometheusHistogram {
		return s.GetOrCreatePrometheusHistogramExt(series(mTaskDuration, "state", v[0]), taskBuckets)
	})
	for _, st := range []string{"completed", "failed", "exception"} {
		r.taskDuration.with(st, "")
	}
	r.resolved.with("completed", "completed")
	r.resolved.with("failed", "failed")
	for _, st := range []string{"s3", "object"} {
		r.uploadedBytes.with(st, "")
		r.uploadedArtifact.with(st, "")
	}
	s.NewGauge(series(mBuildInfo, "version", info.Version, "profile", info.Profile, "engine", info.Engine), nil).Set(1)
	s.RegisterMetricsWriter(r.writeRunnerMessages)
	return r
}

// series is the name of one series of metric name with labels (name,
// value pairs) in the text format: name{l1="v1",l2="v2"}, the values
// escaped (backslash, double quote, newline).
func series(name string, labels ...string) string {
	var b strings.Builder
	b.WriteString(name)
	for i := 0; i+1 < len(labels); i += 2 {
		sep := byte(',')
		if i == 0 {
			sep = '{'
		}
		b.WriteByte(sep)
		b.WriteString(labels[i])
		b.WriteString(`="`)
		b.WriteString(labelEscaper.Replace(labels[i+1]))
		b.WriteByte('"')
	}
	if len(labels) > 1 {
		b.WriteByte('}')
	}
	return b.String()
}

// labelPairs pairs label names (one or two) with values.
func labelPairs(names []string, values [2]string) []string {
	out := make([]string, 0, 2*len(names))
	for i, n := range names {
		out = append(out, n, values[i])
	}
	return out
}

// vec is a family's series by label values (up to two), each created on
// first use; a lookup of an existing series neither allocates nor
// formats its name.
type vec[T any] struct {
	mu     sync.RWMutex
	m      map[[2]string]T
	create func(values [2]string) T
}

func newVec[T any](create func(values [2]string) T) *vec[T] {
	return &vec[T]{m: map[[2]string]T{}, create: create}
}

// with returns the series with label values a and b ("" when the family
// has one label).
func (v *vec[T]) with(a, b string) T {
	k := [2]string{a, b}
	v.mu.RLock()
	s, ok := v.m[k]
	v.mu.RUnlock()
	if ok {
		return s
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if s, ok = v.m[k]; !ok {
		s = v.create(k)
		v.m[k] = s
	}
	return s
}

var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

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
		r.claimFailures.with(codeLabel(code), "").Inc()
	case claimed > 0:
		outcome = "tasks"
		r.claimed.Add(claimed)
	}
	r.claimDuration[outcome].Update(d.Seconds())
}

// ReclaimTask records one reclaimTask call, as ClaimWork does.
func (r *Recorder) ReclaimTask(d time.Duration, code int, err error) {
	if r == nil {
		return
	}
	r.reclaimDuration.Update(d.Seconds())
	if err != nil {
		r.reclaimFailures.with(codeLabel(code), "").Inc()
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
	r.resolved.with(state, reason).Inc()
	r.taskDuration.with(state, "").Update(d.Seconds())
}

// ArtifactUploaded records a file artifact of n bytes (as sent) uploaded
// with storageType ("s3", "object").
func (r *Recorder) ArtifactUploaded(storageType string, n int64) {
	if r == nil {
		return
	}
	r.uploadedArtifact.with(storageType, "").Inc()
	r.uploadedBytes.with(storageType, "").AddInt64(n)
}

// RunnerMessages makes each, called at every scrape, the source of
// workergen_worker_runner_messages_total{direction, type}: it calls
// count once per direction ("sent", "received") and message type with
// the number of such messages so far. Only the first call has an effect.
// The connection keeps its own counts, so that the handshake, which comes
// before the Recorder exists, is counted too.
func (r *Recorder) RunnerMessages(each func(count func(direction, msgType string, n uint64))) {
	if r == nil || each == nil {
		return
	}
	r.runnerMu.Lock()
	defer r.runnerMu.Unlock()
	if r.runner == nil {
		r.runner = each
	}
}

// writeRunnerMessages writes workergen_worker_runner_messages_total's
// family (none before RunnerMessages, or without messages).
func (r *Recorder) writeRunnerMessages(w io.Writer) {
	r.runnerMu.Lock()
	each := r.runner
	r.runnerMu.Unlock()
	if each == nil {
		return
	}
	var b bytes.Buffer
	each(func(direction, msgType string, n uint64) {
		fmt.Fprintf(&b, "%s %d\n", series(mRunnerMessages, "direction", direction, "type", msgType), n)
	})
	if b.Len() == 0 {
		return
	}
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n", mRunnerMessages, help[mRunnerMessages], mRunnerMessages)
	_, _ = w.Write(b.Bytes())
}

// WritePrometheus writes every series in Prometheus' text exposition
// format to w: the workergen_ families (with their # HELP text), then the
// library's go_* and process_* series (process_open_fds and
// process_max_fds included).
func (r *Recorder) WritePrometheus(w io.Writer) {
	if r == nil {
		return
	}
	var b bytes.Buffer
	r.set.WritePrometheus(&b)
	_, _ = w.Write(withHelp(b.Bytes()))
	vm.WriteProcessMetrics(w)
	vm.WriteFDMetrics(w)
}

// withHelp adds the help text to the library's bare "# HELP <name>" lines
// of the workergen_ families in exposition.
func withHelp(exposition []byte) []byte {
	var out bytes.Buffer
	out.Grow(len(exposition) + 2048)
	for line := range bytes.Lines(exposition) {
		name, ok := bytes.CutPrefix(bytes.TrimSuffix(line, []byte("\n")), []byte("# HELP "))
		if text := help[string(name)]; ok && text != "" {
			fmt.Fprintf(&out, "# HELP %s %s\n", name, text)
			continue
		}
		out.Write(line)
	}
	return out.Bytes()
}

func codeLabel(code int) string {
	if code <= 0 {
		return "none"
	}
	return strconv.Itoa(code)
}
