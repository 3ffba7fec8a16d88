// Package env is the plugin that gives a task its environment variables: the
// payload's `env` object plus the variables generic-worker documents for
// every task (upstream: schemas/generic-worker/insecure_posix.json and
// multiuser_windows.json, property `env`).
//
// # Variables set
//
//   - every `payload.env` entry, name and value unchanged (values of any size
//     and content, NUL excepted);
//   - TASK_ID, RUN_ID (decimal), TASK_GROUP_ID from the task definition;
//   - TASK_WORKDIR, the run's task directory (task.Context.TaskDir), when the
//     engine gives the run one;
//   - TASKCLUSTER_ROOT_URL, the deployment's root URL, when the worker has
//     one. In run mode there is no deployment and the variable is not set
//     (generic-worker always sets it, possibly empty; an empty URL only
//     makes tools fail later with a worse message).
//
// TASKCLUSTER_WORKER_LOCATION and TASKCLUSTER_INSTANCE_TYPE are not set: the
// worker config has no source for them yet, and this plugin sets only what it
// can honestly set. TASKCLUSTER_PROXY_URL belongs to the proxy plugin.
//
// # docker-worker payloads
//
// When the profile's dialect is docker-worker (Options.Dialect; the
// linux-docker and linux-podman profiles) the variables are those docker-worker
// sets for every container (upstream: workers/docker-worker/src/lib/task.js,
// dockerConfig) that this worker can honestly fill:
//
//   - TASK_ID, RUN_ID;
//   - TASKCLUSTER_ROOT_URL, when the worker has one;
//   - TASKCLUSTER_WORKER_TYPE, the part of workerPoolId after "/", and
//     TASKCLUSTER_WORKER_GROUP, when set.
//
// TASK_WORKDIR and TASK_GROUP_ID are not set: docker-worker does not set
// them, and the host's task directory means nothing inside a container.
// TASKCLUSTER_INSTANCE_TYPE, TASKCLUSTER_PUBLIC_IP and
// TASKCLUSTER_WORKER_LOCATION are not set either: the worker config has no
// source for them. As in docker-worker, payload entries cannot override the
// worker's variables.
//
// # Precedence
//
// As in generic-worker, the worker's variables win: a payload entry naming
// TASK_ID, RUN_ID, TASK_WORKDIR, TASK_GROUP_ID or (when set) TASKCLUSTER_ROOT_URL
// is dropped and a line in the task log says so. On Windows names compare
// case-insensitively ("task_id" is TASK_ID), as the OS does.
//
// # Errors
//
// A name that is empty or holds '=' or NUL, or a value holding NUL, is
// malformed-payload naming `payload.env["NAME"]` before anything runs; names
// the engine refuses (engines.ErrInvalidEnvName, ErrInvalidEnvValue) or that
// another plugin already set (engines.ErrEnvConflict) are malformed-payload
// from the BuildSandbox stage.
package env

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/plugins"
	"github.com/workergen/workergen/task"
)

// Config is the plugin's worker config section (`plugins.env`); it has no
// fields.
type Config struct{}

// Payload is the part of the task payload this plugin owns.
type Payload struct {
	// Env maps variable names to values (upstream `env`).
	Env map[string]string `json:"env,omitempty"`
}

// Names of the variables the worker sets for every task.
const (
	VarTaskID      = "TASK_ID"
	VarRunID       = "RUN_ID"
	VarTaskWorkdir = "TASK_WORKDIR"
	VarTaskGroupID = "TASK_GROUP_ID"
	VarRootURL     = "TASKCLUSTER_ROOT_URL"
	// VarWorkerType and VarWorkerGroup are set for docker-worker payloads.
	VarWorkerType  = "TASKCLUSTER_WORKER_TYPE"
	VarWorkerGroup = "TASKCLUSTER_WORKER_GROUP"
)

type plugin struct {
	dialect task.Dialect
}

var _ plugins.Plugin = (*plugin)(nil)

// New returns the env plugin for opts.Dialect. opts.Config is empty, null
// or a Config.
func New(opts plugins.Options) (plugins.Plugin, error) {
	var c Config
	if err := plugins.DecodeConfig(opts.Config, &c); err != nil {
		return nil, fmt.Errorf("plugins.env: %w", err)
	}
	return &plugin{dialect: opts.Dialect}, nil
}

// Close does nothing.
func (*plugin) Close() error { return nil }

// NewTaskPlugin decodes `payload.env` and checks names and values for what
// no engine accepts.
func (pl *plugin) NewTaskPlugin(_ context.Context, tc *task.Context) (plugins.TaskPlugin, error) {
	var p Payload
	if err := plugins.DecodePayloadField(tc.Definition.Payload, "env", &p.Env); err != nil {
		return nil, err
	}
	var reasons []string
	for _, name := range sortedKeys(p.Env) {
		switch {
		case name == "":
			reasons = append(reasons, `payload.env[""]: variable name is empty`)
		case strings.ContainsAny(name, "=\x00"):
			reasons = append(reasons, fmt.Sprintf("payload.env[%q]: variable name contains '=' or NUL", name))
		}
		if strings.IndexByte(p.Env[name], 0) >= 0 {
			reasons = append(reasons, fmt.Sprintf("payload.env[%q]: value contains a NUL byte", name))
		}
	}
	if len(reasons) > 0 {
		return nil, task.MalformedPayload(reasons...)
	}
	return &taskPlugin{tc: tc, env: p.Env, dialect: pl.dialect}, nil
}

type taskPlugin struct {
	plugins.Base
	tc      *task.Context
	env     map[string]string
	dialect task.Dialect
}

// DockerWorkerVars returns the variables the worker sets for a run of a
// docker-worker payload, by name (see the package documentation).
func DockerWorkerVars(tc *task.Context) map[string]string {
	vars := map[string]string{
		VarTaskID: tc.TaskID,
		VarRunID:  strconv.Itoa(tc.RunID),
	}
	if tc.Worker.RootURL != "" {
		vars[VarRootURL] = tc.Worker.RootURL
	}
	if _, workerType, ok := strings.Cut(tc.Worker.WorkerPoolID, "/"); ok && workerType != "" {
		vars[VarWorkerType] = workerType
	}
	if tc.Worker.WorkerGroup != "" {
		vars[VarWorkerGroup] = tc.Worker.WorkerGroup
	}
	return vars
}

// WorkerVars returns the variables the worker sets for a run of a
// generic-worker payload, by name.
func WorkerVars(tc *task.Context) map[string]string {
	vars := map[string]string{
		VarTaskID:      tc.TaskID,
		VarRunID:       strconv.Itoa(tc.RunID),
		VarTaskGroupID: tc.Definition.TaskGroupID,
	}
	if tc.TaskDir != "" {
		vars[VarTaskWorkdir] = tc.TaskDir
	}
	if tc.Worker.RootURL != "" {
		vars[VarRootURL] = tc.Worker.RootURL
	}
	return vars
}

// BuildSandbox sets the worker's variables, then the payload's.
func (p *taskPlugin) BuildSandbox(_ context.Context, b engines.SandboxBuilder) error {
	worker := WorkerVars(p.tc)
	if p.dialect.IsDockerWorker() {
		worker = DockerWorkerVars(p.tc)
	}
	for _, name := range sortedKeys(worker) {
		if err := b.SetEnv(name, worker[name]); err != nil {
			return fmt.Errorf("setting %s: %w", name, err)
		}
	}
	var reasons []string
	for _, name := range sortedKeys(p.env) {
		if wname, ok := shadowed(worker, name); ok {
			p.tc.Logf("payload.env[%q] is ignored: the worker sets %s for every task", name, wname)
			continue
		}
		err := b.SetEnv(name, p.env[name])
		switch {
		case err == nil:
		case errors.Is(err, engines.ErrInvalidEnvName):
			reasons = append(reasons, fmt.Sprintf("payload.env[%q]: %v", name, err))
		case errors.Is(err, engines.ErrInvalidEnvValue):
			reasons = append(reasons, fmt.Sprintf("payload.env[%q]: %v", name, err))
		case errors.Is(err, engines.ErrEnvConflict):
			reasons = append(reasons, fmt.Sprintf("payload.env[%q]: conflicts with a variable this worker sets: %v", name, err))
		default:
			return fmt.Errorf("setting payload.env[%q]: %w", name, err)
		}
	}
	if len(reasons) > 0 {
		return task.MalformedPayload(reasons...)
	}
	return nil
}

// foldCase: variable names are case-insensitive (Windows), so a payload
// entry "task_id" is the worker's TASK_ID.
var foldCase = runtime.GOOS == "windows"

// shadowed returns the worker variable that payload variable name would
// override, if any.
func shadowed(worker map[string]string, name string) (string, bool) {
	if _, ok := worker[name]; ok {
		return name, true
	}
	if foldCase {
		for w := range worker {
			if strings.EqualFold(w, name) {
				return w, true
			}
		}
	}
	return "", false
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
