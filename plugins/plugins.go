// Package plugins defines the plugin contract: the pieces of a worker that
// are not the engine (environment variables, maxRunTime, exit status
// handling, artifacts, the task log, ...). A profile chooses zero or more
// plugins; the generated main constructs each once per worker, in the
// profile's declared order.
//
// # Life cycle
//
// Per worker: each plugin package exports `func New(Options) (Plugin, error)`;
// the worker calls it once at start-up and Plugin.Close once at the end.
//
// Per task run: Plugin.NewTaskPlugin is called once, after the payload passed
// the profile's composed payload schema; the plugin decodes the payload
// fields it owns. Then the worker calls the stages of every TaskPlugin, each
// stage for all plugins in declared order before the next stage starts:
//
//	Prepare       validate what the schema cannot, start downloads
//	BuildSandbox  contribute env vars, volumes, proxies to the builder
//	Started       the task is running (e.g. start a maxRunTime timer)
//	Stopped       the task ended: read its result, collect artifacts;
//	              return false to make a successful task fail
//	Finished      the run's success is decided: upload logs
//	Exception     instead of the remaining stages when the run ends as an
//	              exception (payload, infrastructure or shutdown)
//	Dispose       always last, once, whatever happened before
//
// A stage that returns a *task.ExceptionError ends the run with that
// exception (Exception is then called on every task plugin); any other error
// is internal-error. A panic in a stage is recovered by the worker and
// reported as internal-error for that run only.
//
// Plugins embed Base to get no-op implementations of the stages they do not
// need. Every plugin is exercised through plugins/plugintest.
package plugins

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/internal/suggest"
	"github.com/workergen/workergen/task"
)

// Options are what the generated main passes to a plugin's constructor.
type Options struct {
	// Config is the plugin's section of the worker config (the
	// `plugins.<name>` key), validated against the profile's config schema
	// with the profile's defaults applied.
	Config json.RawMessage
	// Worker is the worker's global config subset every plugin may read.
	Worker WorkerConfig
	// Engine is the worker's engine, for plugins that use optional engine
	// abilities (detected by type assertion on the engine or the builder).
	Engine engines.Engine
	// Logger is the worker's structured log.
	Logger *slog.Logger
	// Dialect is the payload format of the worker's profile (its
	// `dialect:` field). Plugins that serve several dialects branch on
	// Dialect.IsDockerWorker; the zero value is treated as generic-worker.
	Dialect task.Dialect
}

// WorkerConfig is the part of the worker config that is not owned by one
// engine or plugin.
type WorkerConfig struct {
	task.WorkerInfo
	// MaxTaskRunTime caps a payload's maxRunTime, in seconds.
	MaxTaskRunTime int
	// TasksDir is where task directories are created.
	TasksDir string
	// UploadConcurrency bounds parallel artifact uploads per run.
	UploadConcurrency int
}

// Constructor builds a plugin.
type Constructor func(Options) (Plugin, error)

// Plugin is one plugin of a worker. It must be safe for concurrent use:
// runs of a worker with capacity > 1 overlap.
type Plugin interface {
	// NewTaskPlugin returns this plugin's state for one run. A
	// *task.ExceptionError (usually malformed-payload naming the field)
	// ends the run before anything runs.
	NewTaskPlugin(ctx context.Context, tc *task.Context) (TaskPlugin, error)
	// Close is called once when the worker stops.
	Close() error
}

// TaskPlugin is a plugin's per-run state. Each method is called at most
// once, in the order given in the package documentation.
type TaskPlugin interface {
	Prepare(ctx context.Context) error
	BuildSandbox(ctx context.Context, b engines.SandboxBuilder) error
	Started(ctx context.Context, s engines.Sandbox) error
	// Stopped receives the task's result. ok=false makes the run fail even
	// when the command succeeded (e.g. a required artifact is missing).
	Stopped(ctx context.Context, r engines.ResultSet) (ok bool, err error)
	// Finished is called with the run's resolution once it is known (the
	// resolution may still change to exception if a Finished stage fails,
	// e.g. a log upload).
	Finished(ctx context.Context, res task.Resolution) error
	// Exception is called instead of the remaining stages when the run ends
	// as an exception.
	Exception(ctx context.Context, res task.Resolution) error
	Dispose(ctx context.Context) error
}

// UnstartedRunHandler is implemented by plugins that must act on every run,
// also one that ended before this plugin's TaskPlugin existed (payload
// rejected by the schema, or another plugin's NewTaskPlugin failed). The
// worker calls RunEndedEarly once for such runs, after the log footer is
// written; the task log plugin uses it so the log holding the reasons is
// still uploaded.
type UnstartedRunHandler interface {
	RunEndedEarly(ctx context.Context, tc *task.Context, res task.Resolution) error
}

// Base implements every TaskPlugin stage as a no-op; embed it.
type Base struct{}

// Prepare does nothing.
func (Base) Prepare(context.Context) error { return nil }

// BuildSandbox does nothing.
func (Base) BuildSandbox(context.Context, engines.SandboxBuilder) error { return nil }

// Started does nothing.
func (Base) Started(context.Context, engines.Sandbox) error { return nil }

// Stopped accepts the result.
func (Base) Stopped(context.Context, engines.ResultSet) (bool, error) { return true, nil }

// Finished does nothing.
func (Base) Finished(context.Context, task.Resolution) error { return nil }

// Exception does nothing.
func (Base) Exception(context.Context, task.Resolution) error { return nil }

// Dispose does nothing.
func (Base) Dispose(context.Context) error { return nil }

var _ TaskPlugin = Base{}

// DecodeConfig decodes a plugin's config section (Options.Config) into v,
// accepting an empty or null section (v keeps its zero value) and rejecting
// unknown keys with an error naming the key and, when one is near it, the
// field meant (`unknown field "minFreeByte"; did you mean "minFreeBytes"?`).
func DecodeConfig(raw json.RawMessage, v any) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("decoding config: %w", suggest.UnknownField(err, v))
	}
	return nil
}

// DecodePayloadField decodes the top-level payload field name into v,
// leaving v alone when the field is absent or null. A payload that is not
// a JSON object, or a field of the wrong shape, is a *task.ExceptionError
// (malformed-payload) naming `payload.<name>`.
func DecodePayloadField(payload json.RawMessage, name string, v any) error {
	if len(bytes.TrimSpace(payload)) == 0 {
		return nil
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(payload, &fields); err != nil {
		return task.MalformedPayloadf("payload: not a JSON object: %v", err)
	}
	raw, ok := fields[name]
	if !ok || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return task.MalformedPayloadf("payload.%s: %v", name, err)
	}
	return nil
}
