// Package config loads a generated worker's operator config: the
// profile's embedded defaults, the operator's file (JSON, or YAML read as
// YAML 1.2) merged over them object by object, then the TASKCLUSTER_*
// environment variables, validated against the profile's embedded config
// schema. Every problem is reported at once as `config.<path>: <problem>`,
// wrapped in ErrConfig. YAMLToJSON is also how the worker reads task files.
package config

import (
	"encoding/json"

	"github.com/workergen/workergen/taskcluster/tcwire"
)

// Config is the operator's worker config: a JSON (or YAML) file given with
// --config, merged over the profile's defaults and validated against the
// profile's config schema (the CUE #Config in schemas/, exported as
// config.schema.json; unknown keys are errors).
type Config struct {
	// RootURL is the Taskcluster deployment, e.g. "https://tc.example.com".
	// Environment TASKCLUSTER_ROOT_URL overrides it.
	RootURL string `json:"rootUrl,omitempty"`
	// Credentials are the worker's Taskcluster credentials. Environment
	// TASKCLUSTER_CLIENT_ID, TASKCLUSTER_ACCESS_TOKEN and
	// TASKCLUSTER_CERTIFICATE override them.
	Credentials Credentials `json:"credentials"`

	// WorkerPoolID is "<provisionerId>/<workerType>"; it is also the
	// taskQueueId the worker claims from. WorkerGroup and WorkerID name
	// this worker in it. The three have no default: `work` requires them
	// (IdentityKeys), `run TASK_FILE` fills local placeholders. Environment
	// TASKCLUSTER_WORKER_POOL_ID, TASKCLUSTER_WORKER_GROUP and
	// TASKCLUSTER_WORKER_ID override them.
	WorkerPoolID string `json:"workerPoolId,omitempty"`
	WorkerGroup  string `json:"workerGroup,omitempty"`
	WorkerID     string `json:"workerId,omitempty"`

	// StateDir is the worker's state directory, absolute once loaded
	// (default: DefaultStateDir).
	StateDir string `json:"stateDir,omitempty"`

	// Capacity is how many tasks run at once (>= 1).
	Capacity int `json:"capacity"`
	// TasksDir is where per-run task directories and the run journal
	// (TasksDir/.journal) are created; absolute once loaded (default
	// StateDir/tasks).
	TasksDir string `json:"tasksDir"`
	// MaxTaskRunTime caps a payload's maxRunTime, in seconds.
	MaxTaskRunTime int `json:"maxTaskRunTime"`

	// ReclaimMargin is how long before takenUntil a run is reclaimed, in
	// seconds.
	ReclaimMargin int `json:"reclaimMargin"`
	// ShutdownGracePeriod is how long running tasks may go on after
	// SIGTERM/SIGINT before they are killed and resolved worker-shutdown, in
	// seconds.
	ShutdownGracePeriod int `json:"shutdownGracePeriod"`
	// NumberOfTasksToRun stops the worker after that many runs; 0 means no
	// limit.
	NumberOfTasksToRun int `json:"numberOfTasksToRun"`
	// IdleTimeout stops the worker after that many seconds without a task;
	// 0 means never.
	IdleTimeout int `json:"idleTimeout"`
	// ArtifactUpload is the storage type used for file artifacts: "s3" or
	// "object".
	ArtifactUpload string `json:"artifactUpload"`
	// UploadConcurrency bounds parallel artifact uploads per run.
	UploadConcurrency int `json:"uploadConcurrency"`

	// LogFormat is the worker log's format: "text" (slog's key=value
	// lines) or "json" (one JSON object per line with time, level, msg
	// and the record's attributes); "" means text.
	LogFormat string `json:"logFormat,omitempty"`
	// LogLevel is the least level logged: "debug", "info", "warn" or
	// "error"; "" means info for a claiming worker and warn for `run
	// TASK_FILE`. The -v flag means debug.
	LogLevel string `json:"logLevel,omitempty"`
	// LogFile, when set, is a file the worker log is appended to as well
	// (created with mode 0640), in LogFormat.
	LogFile string `json:"logFile,omitempty"`
	// Metrics configures the Prometheus metrics endpoint of `work`.
	Metrics Metrics `json:"metrics"`

	// Engine is the engine's own section.
	Engine json.RawMessage `json:"engine,omitempty"`
	// Plugins holds each plugin's section by plugin name.
	Plugins map[string]json.RawMessage `json:"plugins,omitempty"`
}

// Metrics is the config section `metrics`.
type Metrics struct {
	// Listen is the host:port the metrics are served on at /metrics,
	// e.g. "127.0.0.1:9100"; "" turns the endpoint off.
	Listen string `json:"listen,omitempty"`
}

// Credentials are Taskcluster credentials (permanent, or temporary with a
// certificate): tcwire.Credentials.
type Credentials = tcwire.Credentials
