// Package task holds the types every layer of a worker shares about one task
// run: the task definition (the Queue's task.json, tcwire.TaskDefinition),
// the per-run context handed to the engine and plugins (with the run's
// credentials, a Queue signed with them, and HasScopes for scope checks on
// the task's scopes, expanding its roles), the task log, the
// artifact sink, and the resolution vocabulary of the Taskcluster Queue
// (reportCompleted / reportFailed / reportException reasons).
//
// The package is nearly a leaf: it imports only the standard library and the
// Taskcluster wire types (taskcluster/tcwire), so the engine contract
// (engines), the plugin contract (plugins) and the runtime (worker) can all
// depend on it.
package task

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/workergen/workergen/taskcluster/tcwire"
)

// Definition is a Taskcluster task definition as the Queue serves it
// (queue/v1 task.json): the shared wire type tcwire.TaskDefinition. Payload
// is kept raw: the engine and each plugin decode the fields they own after
// the worker validated the whole payload against the profile's composed
// payload schema.
type Definition = tcwire.TaskDefinition

// Metadata is the task definition's `metadata` object.
type Metadata = tcwire.TaskMetadata

// WorkerInfo identifies the worker running a task, in Taskcluster's terms,
// plus the build it comes from.
type WorkerInfo struct {
	RootURL      string // Taskcluster deployment, e.g. "https://tc.example.com"; empty in run mode
	WorkerPoolID string // "<provisionerId>/<workerType>", equal to the taskQueueId it claims from
	WorkerGroup  string
	WorkerID     string
	Profile      string // profile name, e.g. "linux-native"
	Version      string // worker version, e.g. "1.2.3" or "0.0.0-dev+abc1234"
	Engine       string // engine kind linked into this binary
	Plugins      []string
}

// Context is one task run as the engine and plugins see it. The worker
// creates it after claiming the run (or reading a task file in run mode) and
// it stays valid until the run's Dispose stage has returned.
//
// Fields are read-only for engines and plugins, except through the methods of
// Log and Artifacts, which are safe for concurrent use.
type Context struct {
	TaskID     string
	RunID      int
	Definition Definition
	Worker     WorkerInfo

	// TaskDir is the run's fresh working directory on the worker host
	// (absolute path). Engines that run on the host use it as the working
	// directory; container engines may ignore it.
	TaskDir string

	// Log is the task log that is uploaded as the backing log artifact. The
	// worker writes its header before the first stage and its footer (exit
	// code, duration, resolution) before the Finished/Exception stage.
	Log *Log
	// LogPath is the host path of the file backing Log. It is complete (the
	// footer written) when the Finished or Exception stage runs.
	LogPath string

	// Artifacts receives the artifacts the run publishes.
	Artifacts ArtifactSink

	// Credentials returns the run's current temporary Taskcluster
	// credentials (from the claim, replaced on every reclaim), or nil in run
	// mode. Call it each time credentials are needed; do not keep or modify
	// the result.
	Credentials func() *Credentials

	// Queue reaches the deployment's Index and Queue with the run's
	// current credentials (unsigned in run mode, which has none), or is nil
	// when the worker has no rootUrl. Components use it instead of building
	// their own client.
	Queue Queue

	// ScopeExpander expands the task's `assume:` scopes for HasScopes
	// (the Auth service's expandScopes, called with the worker's own
	// credentials), or is nil when the worker has no rootUrl.
	ScopeExpander ScopeExpander

	// Logger is the worker's structured log (not the task log), with taskId
	// and runId attached.
	Logger *slog.Logger

	// Started is when the run started on this worker.
	Started time.Time

	// Data lets plugins share typed values within one run (for example the
	// exitstatus plugin marks caches for purging that a cache plugin purges).
	// Keys are plugin-defined; access goes through Value and SetValue.
	data         map[any]any
	expanded     []string // the task's scopes expanded by ScopeExpander, once it succeeded
	explanations []string
	reserved     map[string]string // artifact name -> owning payload field
	mu           sync.Mutex
}

// PurgeCachesKey is the Context value key (see SetValue) under which a
// plugin stores true to ask that the caches this run used be purged (set by
// the exitstatus plugin for onExitStatus.purgeCaches codes; read by plugins
// that manage caches).
type PurgeCachesKey struct{}

// Credentials are Taskcluster credentials (tcwire.Credentials); a run's
// task credentials are temporary: Certificate is set.
type Credentials = tcwire.Credentials

// Queue is what a run's components reach of the Taskcluster deployment,
// signed with the run's current task credentials (so within the task's
// scopes). The worker sets Context.Queue when it has a rootUrl; in run mode
// without one it is nil. Methods are safe for concurrent use and retry
// network errors and 5xx answers themselves.
//
// Errors: a refusal by the service (its 4xx answer: namespace, task or
// artifact missing, an error artifact, scopes lacking) is a
// *tcwire.APIError in the chain (tcwire.StatusCode gives its status; 404s
// match errors.Is(err, tcwire.ErrNotFound), 403s tcwire.ErrForbidden);
// anything else is transient.
type Queue interface {
	// FindTask returns the taskId indexed under namespace, e.g.
	// "project.app.latest" (index.findTask).
	FindTask(ctx context.Context, namespace string) (taskID string, err error)
	// OpenLatestArtifact opens the content of the artifact name (e.g.
	// "public/image.tar") of taskID's latest run: queue.status, then
	// queue.getArtifact and the download it redirects to. A task without
	// runs is an error matching tcwire.ErrNotFound. The caller closes the
	// reader.
	OpenLatestArtifact(ctx context.Context, taskID, name string) (io.ReadCloser, error)
}

// ScopeExpander expands a scope set with the deployment's roles: the Auth
// service's expandScopes (POST <rootUrl>/api/auth/v1/scopes/expand, which
// needs scope auth:expand-scopes). The result holds the input and every
// scope its `assume:` scopes imply. Errors are transient or refusals
// (*tcwire.APIError); implementations are safe for concurrent use.
type ScopeExpander interface {
	ExpandScopes(ctx context.Context, scopes []string) ([]string, error)
}

// HasScopes reports whether the task's scopes (Definition.Scopes) satisfy
// every scope in scopes, under Taskcluster's rule (tcwire.ScopeSatisfied:
// exact, or a scope ending in "*" that prefixes it). No scopes is always
// satisfied. As generic-worker (v106, scopes.Given.Satisfies) does, when
// the task's scopes as written do not satisfy them and hold an `assume:`
// scope, they are expanded through ScopeExpander (once per run; the result
// is kept) and checked again, so scopes a task gets through a role count.
//
// The error, when the expansion could not be done (no ScopeExpander, the
// Auth service unreachable or refusing), is a *ExceptionError with
// ReasonResourceUnavailable, as generic-worker reports it.
func (c *Context) HasScopes(ctx context.Context, scopes ...string) (bool, error) {
	if tcwire.HasScopes(c.Definition.Scopes, scopes...) {
		return true, nil
	}
	if !slices.ContainsFunc(c.Definition.Scopes, func(s string) bool { return strings.HasPrefix(s, "assume:") }) {
		return false, nil
	}
	c.mu.Lock()
	expanded := c.expanded
	c.mu.Unlock()
	if expanded == nil {
		if c.ScopeExpander == nil {
			return false, ResourceUnavailable(fmt.Errorf("expanding the task's assume: scopes: this worker has no rootUrl (no Auth service to expand them with)"))
		}
		var err error
		if expanded, err = c.ScopeExpander.ExpandScopes(ctx, c.Definition.Scopes); err != nil {
			return false, ResourceUnavailable(fmt.Errorf("expanding the task's assume: scopes (auth.expandScopes with the worker's credentials, which need auth:expand-scopes): %w", err))
		}
		c.mu.Lock()
		c.expanded = expanded
		c.mu.Unlock()
	}
	return tcwire.HasScopes(expanded, scopes...), nil
}

// Value returns the value stored under key by SetValue, or nil.
func (c *Context) Value(key any) any {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.data[key]
}

// SetValue stores v under key for the rest of the run.
func (c *Context) SetValue(key, v any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.data == nil {
		c.data = map[any]any{}
	}
	c.data[key] = v
}

// ReserveArtifactName claims an artifact name for this run on behalf of
// owner (the payload field that names it, e.g. "payload.artifacts[2].name"
// or "payload.logs.backing"), so that two plugins never publish the same
// name. It returns an error naming both owners when the name is taken;
// plugins report it as malformed-payload before anything runs. Safe for
// concurrent use.
func (c *Context) ReserveArtifactName(name, owner string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.reserved == nil {
		c.reserved = map[string]string{}
	}
	if prev, ok := c.reserved[name]; ok && prev != owner {
		return fmt.Errorf("%s: artifact name %q is also used by %s", owner, name, prev)
	}
	c.reserved[name] = owner
	return nil
}

// WrapArtifacts replaces Artifacts with wrap(Artifacts), so that a plugin
// sees every artifact the run publishes after it (the chainoftrust plugin
// hashes them). Call it only from NewTaskPlugin, which the worker calls for
// one plugin at a time; stages read Artifacts when they publish.
func (c *Context) WrapArtifacts(wrap func(ArtifactSink) ArtifactSink) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.Artifacts = wrap(c.Artifacts)
}

// Explain records why the run is failing or ending (e.g. "maxRunTime of
// 600 seconds exceeded"), in addition to logging it; the worker shows the
// explanations with the resolution (run's summary, manifest). Safe for
// concurrent use.
func (c *Context) Explain(reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.explanations = append(c.explanations, reason)
}

// Explanations returns what Explain recorded, in order.
func (c *Context) Explanations() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.explanations...)
}

// Logf writes one line to the task log, prefixed with "[workergen] " the way
// worker-originated lines are marked in the log.
func (c *Context) Logf(format string, args ...any) {
	if c.Log != nil {
		c.Log.Systemf(format, args...)
	}
}

// ArtifactKind is a Taskcluster artifact storage type (queue/v1
// post-artifact-request.json `storageType`), as far as a worker creates them.
type ArtifactKind string

// Artifact storage types a worker creates.
const (
	ArtifactFile      ArtifactKind = "file"      // uploaded as "s3" or "object" depending on worker config
	ArtifactError     ArtifactKind = "error"     // no content: Reason and Message say why
	ArtifactReference ArtifactKind = "reference" // redirect to URL
	ArtifactLink      ArtifactKind = "link"      // points at another artifact of the same run (LinkTo)
)

// Error artifact reasons allowed by the Queue (post-artifact-request.json).
const (
	ErrorFileMissingOnWorker     = "file-missing-on-worker"
	ErrorInvalidResourceOnWorker = "invalid-resource-on-worker"
	ErrorTooLargeFileOnWorker    = "too-large-file-on-worker"
)

// Artifact is one artifact a run publishes.
type Artifact struct {
	Name    string // e.g. "public/build/target.tar.gz"; no leading "/", no ".." segments
	Kind    ArtifactKind
	Expires time.Time

	// For ArtifactFile:
	ContentType     string // MIME type sent with the upload
	ContentEncoding string // EncodingGzip or EncodingIdentity (empty means identity)
	Size            int64  // bytes before encoding; -1 when unknown
	// Open returns the artifact's content, unencoded; the sink applies
	// ContentEncoding. It may be called more than once (upload retries).
	Open func() (io.ReadCloser, error)
	// Path is the host path the content came from, when there is one; it is
	// recorded in run mode's manifest.
	Path string

	// For ArtifactError:
	Reason  string // one of the Error* constants
	Message string

	// For ArtifactReference:
	URL string
	// For ArtifactLink: name of the artifact this one links to.
	LinkTo string
}

// ArtifactSink publishes artifacts: in run mode to an output directory, in
// work mode to the Queue. Implementations are safe for concurrent use.
// Publish returns an *ExceptionError with ReasonResourceUnavailable when the
// upload could not be done.
type ArtifactSink interface {
	Publish(ctx context.Context, a Artifact) error
}

// EncodingReporter is implemented by an ArtifactSink that may store a file
// artifact with another Content-Encoding than the artifact asks for (the
// Object service stores content as it is, unencoded).
type EncodingReporter interface {
	// StoredEncoding returns the Content-Encoding the sink sends for file
	// artifact a: "gzip" or "identity".
	StoredEncoding(a Artifact) string
}

// ArtifactPreparer is implemented by an ArtifactSink that can create a file
// artifact before its content is complete, so that publishing it later
// only has to upload the content. In work mode the Queue's createArtifact
// for it runs in the background while the task runs (the task log is
// prepared when the run starts).
type ArtifactPreparer interface {
	// PrepareArtifact starts creating file artifact a and returns at once;
	// a.Size is not used, a.Open not called yet. A later Publish of an
	// artifact of the same Name uses what the early creation got, unless
	// that failed, is too old or the request would differ (ContentType,
	// Expires): then Publish creates the artifact afresh. An artifact
	// prepared but never published (the Queue cancelled the run) is
	// published by the sink itself with a.Open when the run ends, so no
	// artifact is left without content. Preparing a name twice, or a
	// kind other than ArtifactFile, does nothing.
	PrepareArtifact(a Artifact)
}

// PrepareArtifact asks sink to prepare file artifact a when it is an
// ArtifactPreparer, and reports whether it was asked; other sinks publish
// a only when Publish is called.
func PrepareArtifact(sink ArtifactSink, a Artifact) bool {
	p, ok := sink.(ArtifactPreparer)
	if ok {
		p.PrepareArtifact(a)
	}
	return ok
}

// StoredEncoding returns the Content-Encoding sink stores file artifact a
// with: the sink's answer when it is an EncodingReporter, else
// a.ContentEncoding ("identity" when empty).
func StoredEncoding(sink ArtifactSink, a Artifact) string {
	if r, ok := sink.(EncodingReporter); ok {
		return r.StoredEncoding(a)
	}
	if a.ContentEncoding == "" {
		return "identity"
	}
	return a.ContentEncoding
}

// ---------------------------------------------------------------------------
// Resolutions.

// State is the resolution of a run in Queue terms.
type State string

// Run resolutions.
const (
	Completed State = "completed"
	Failed    State = "failed"
	Exception State = "exception"
)

// Reason is a reportException reason (queue/v1 task-exception-request.json).
type Reason string

// Exception reasons a worker reports.
const (
	ReasonWorkerShutdown      Reason = "worker-shutdown"
	ReasonMalformedPayload    Reason = "malformed-payload"
	ReasonResourceUnavailable Reason = "resource-unavailable"
	ReasonInternalError       Reason = "internal-error"
	ReasonIntermittentTask    Reason = "intermittent-task"
	// ReasonCanceled is not reported by workers; it names a run that the
	// Queue resolved (cancelled, deadline, claim lost) while it ran here.
	ReasonCanceled Reason = "canceled"
)

// Resolution is how a run ended.
type Resolution struct {
	State  State
	Reason Reason // only for Exception
}

func (r Resolution) String() string {
	if r.State == Exception {
		return string(r.State) + "/" + string(r.Reason)
	}
	return string(r.State)
}

// ExceptionError is an error that resolves the run as an exception with
// Reason. Reasons lists human-readable causes (for malformed-payload: one
// line per offending field, each naming the field path).
type ExceptionError struct {
	Reason  Reason
	Reasons []string
	Err     error
}

func (e *ExceptionError) Error() string {
	msg := string(e.Reason)
	for i, r := range e.Reasons {
		if i == 0 {
			msg += ": " + r
		} else {
			msg += "; " + r
		}
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *ExceptionError) Unwrap() error { return e.Err }

// MalformedPayload returns an error resolving the run as
// exception/malformed-payload. Each reason should name the payload field it is
// about, e.g. `payload.artifacts[0].name: ".." segments are not allowed`.
func MalformedPayload(reasons ...string) *ExceptionError {
	return &ExceptionError{Reason: ReasonMalformedPayload, Reasons: reasons}
}

// MalformedPayloadf is MalformedPayload with one formatted reason.
func MalformedPayloadf(format string, args ...any) *ExceptionError {
	return MalformedPayload(fmt.Sprintf(format, args...))
}

// ResourceUnavailable wraps err as exception/resource-unavailable.
func ResourceUnavailable(err error) *ExceptionError {
	return &ExceptionError{Reason: ReasonResourceUnavailable, Err: err}
}

// InternalError wraps err as exception/internal-error.
func InternalError(err error) *ExceptionError {
	return &ExceptionError{Reason: ReasonInternalError, Err: err}
}

// IntermittentTask returns exception/intermittent-task with the given cause.
func IntermittentTask(reason string) *ExceptionError {
	return &ExceptionError{Reason: ReasonIntermittentTask, Reasons: []string{reason}}
}

// Content encodings of an artifact upload (Artifact.ContentEncoding), as the
// Queue's createArtifact and the object service name them.
const (
	EncodingGzip     = "gzip"
	EncodingIdentity = "identity"
)

// ValidateArtifactName checks an artifact name against what the Queue
// accepts and what workergen's artifact sinks require: not empty, printable
// ASCII only (0x20-0x7e: the Queue's `name` route parameter pattern), no
// ".." segment, and no leading "/" (the run-mode sink writes each artifact
// below its output directory). It returns an error describing the first
// problem.
func ValidateArtifactName(name string) error {
	if name == "" {
		return fmt.Errorf("artifact name must not be empty")
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 0x20 || c > 0x7e {
			return fmt.Errorf("artifact name %q holds byte %#02x at offset %d; the Queue accepts printable ASCII only", name, c, i)
		}
	}
	if strings.HasPrefix(name, "/") {
		return fmt.Errorf("artifact name %q must not start with \"/\"", name)
	}
	for seg := range strings.SplitSeq(name, "/") {
		if seg == ".." {
			return fmt.Errorf("artifact name %q must not have \"..\" segments", name)
		}
	}
	return nil
}
