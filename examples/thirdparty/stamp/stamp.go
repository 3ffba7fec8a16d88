// Package stamp is an example third-party workergen plugin, kept in its own
// Go module (example.com/tcstamp) to show how a plugin is written outside
// workergen and composed into a worker by a profile.
//
// For every task run it writes one line into the task log,
//
//	[workergen <time>] stamp: <label> stamped task <taskId> run <runId>[: <note>]
//
// and gives the task the environment variable TCSTAMP=<label>/<taskId>/<runId>.
// The label comes from the worker config (`plugins.stamp.label`, default
// "tcstamp"); the note from the payload's optional `stamp` field (a string,
// at most 200 characters: the composed payload schema checks it, from
// stamp.cue in this folder).
package stamp

import (
	"context"
	"fmt"
	"strconv"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/plugins"
	"github.com/workergen/workergen/task"
)

// EnvVar is the environment variable the plugin sets for every task.
const EnvVar = "TCSTAMP"

// DefaultLabel is the label when the config gives none.
const DefaultLabel = "tcstamp"

// Config is the plugin's worker config section, `plugins.stamp`.
type Config struct {
	// Label names who stamped the task, in the log line and in TCSTAMP.
	Label string `json:"label"`
}

type plugin struct{ label string }

// New returns the stamp plugin. opts.Config is the `plugins.stamp` section
// ({"label": "..."}; unknown keys are an error).
func New(opts plugins.Options) (plugins.Plugin, error) {
	var cfg Config
	if err := plugins.DecodeConfig(opts.Config, &cfg); err != nil {
		return nil, fmt.Errorf("plugins.stamp: %w", err)
	}
	if cfg.Label == "" {
		cfg.Label = DefaultLabel
	}
	return &plugin{label: cfg.Label}, nil
}

// Close does nothing.
func (*plugin) Close() error { return nil }

// NewTaskPlugin decodes the payload's `stamp` note.
func (p *plugin) NewTaskPlugin(_ context.Context, tc *task.Context) (plugins.TaskPlugin, error) {
	var note string
	if err := plugins.DecodePayloadField(tc.Definition.Payload, "stamp", &note); err != nil {
		return nil, err
	}
	return &taskPlugin{label: p.label, note: note, tc: tc}, nil
}

type taskPlugin struct {
	plugins.Base
	label, note string
	tc          *task.Context
}

// BuildSandbox sets TCSTAMP and writes the stamp line.
func (tp *taskPlugin) BuildSandbox(_ context.Context, b engines.SandboxBuilder) error {
	value := tp.label + "/" + tp.tc.TaskID + "/" + strconv.Itoa(tp.tc.RunID)
	if err := b.SetEnv(EnvVar, value); err != nil {
		return task.MalformedPayload(fmt.Sprintf("stamp: cannot set %s: %v", EnvVar, err))
	}
	line := fmt.Sprintf("stamp: %s stamped task %s run %d", tp.label, tp.tc.TaskID, tp.tc.RunID)
	if tp.note != "" {
		line += ": " + tp.note
	}
	tp.tc.Logf("%s", line)
	return nil
}
