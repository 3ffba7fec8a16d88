// Package exitstatus is the plugin that maps a task's exit code to a
// resolution other than `failed` (upstream:
// schemas/generic-worker/insecure_posix.json, property `onExitStatus`).
//
//   - `onExitStatus.retry` (integers >= 1): an exit code listed there resolves
//     the run exception/intermittent-task, so the Queue may schedule a new run.
//   - `onExitStatus.purgeCaches` (integers >= 0): an exit code listed there
//     marks the caches this run used for purging, by storing true under
//     task.PurgeCachesKey in the run's task.Context for the plugins that
//     manage caches.
//
// Both apply only when the task's command ended with an exit code of its own;
// a task the worker killed (maxRunTime, shutdown) or that a signal ended is
// never retried or purged by this plugin. When a code is listed in both, both
// apply. As in generic-worker (TaskMount.shouldPurgeCaches), exit code 0 in
// purgeCaches (the schema's minimum is 0) purges the caches of a successful
// task; retry codes start at 1, so success is never retried.
package exitstatus

import (
	"context"
	"fmt"
	"slices"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/plugins"
	"github.com/workergen/workergen/task"
)

// Config is the plugin's worker config section; it has no fields yet.
type Config struct{}

// OnExitStatus is upstream's `onExitStatus` object.
type OnExitStatus struct {
	// Retry lists exit codes that resolve the run intermittent-task.
	Retry []int64 `json:"retry,omitempty"`
	// PurgeCaches lists exit codes that purge the run's caches.
	PurgeCaches []int64 `json:"purgeCaches,omitempty"`
}

type plugin struct{}

var _ plugins.Plugin = (*plugin)(nil)

// New returns the exitstatus plugin. opts.Config must be empty, null or {}.
func New(opts plugins.Options) (plugins.Plugin, error) {
	if err := plugins.DecodeConfig(opts.Config, &Config{}); err != nil {
		return nil, fmt.Errorf("plugins.exitstatus: %w", err)
	}
	return &plugin{}, nil
}

// Close does nothing.
func (*plugin) Close() error { return nil }

// NewTaskPlugin decodes `payload.onExitStatus`.
func (*plugin) NewTaskPlugin(_ context.Context, tc *task.Context) (plugins.TaskPlugin, error) {
	var o OnExitStatus
	if err := plugins.DecodePayloadField(tc.Definition.Payload, "onExitStatus", &o); err != nil {
		return nil, err
	}
	var reasons []string
	for i, c := range o.Retry {
		if c < 1 {
			reasons = append(reasons, fmt.Sprintf("payload.onExitStatus.retry[%d]: %d is less than the minimum of 1", i, c))
		}
	}
	for i, c := range o.PurgeCaches {
		if c < 0 {
			reasons = append(reasons, fmt.Sprintf("payload.onExitStatus.purgeCaches[%d]: %d is less than the minimum of 0", i, c))
		}
	}
	if len(reasons) > 0 {
		return nil, task.MalformedPayload(reasons...)
	}
	return &taskPlugin{tc: tc, on: o}, nil
}

type taskPlugin struct {
	plugins.Base
	tc *task.Context
	on OnExitStatus
}

// Stopped applies purgeCaches and retry for the task's exit code.
func (p *taskPlugin) Stopped(_ context.Context, r engines.ResultSet) (bool, error) {
	code := r.ExitCode()
	if r.Killed() || code < 0 {
		return true, nil
	}
	if slices.Contains(p.on.PurgeCaches, int64(code)) {
		p.tc.SetValue(task.PurgeCachesKey{}, true)
		p.tc.Logf("exit code %d is listed in payload.onExitStatus.purgeCaches: caches used by this task will be purged", code)
	}
	if slices.Contains(p.on.Retry, int64(code)) {
		p.tc.Logf("exit code %d is listed in payload.onExitStatus.retry: resolving as exception/intermittent-task", code)
		return true, task.IntermittentTask(fmt.Sprintf("exit code %d is listed in payload.onExitStatus.retry", code))
	}
	return true, nil
}
