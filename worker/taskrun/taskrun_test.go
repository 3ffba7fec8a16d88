package taskrun_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/engines/mock"
	"github.com/workergen/workergen/plugins"
	"github.com/workergen/workergen/task"
	"github.com/workergen/workergen/worker/taskrun"
)

// stagePlugin records its stages and fails the one named failAt.
type stagePlugin struct {
	failAt taskrun.Stage
	err    error
	calls  []taskrun.Stage
}

func (p *stagePlugin) at(s taskrun.Stage) error {
	p.calls = append(p.calls, s)
	if s == p.failAt {
		return p.err
	}
	return nil
}

func (p *stagePlugin) NewTaskPlugin(context.Context, *task.Context) (plugins.TaskPlugin, error) {
	if err := p.at(taskrun.StageNewTaskPlugin); err != nil {
		return nil, err
	}
	return p, nil
}
func (p *stagePlugin) Close() error                  { return nil }
func (p *stagePlugin) Prepare(context.Context) error { return p.at(taskrun.StagePrepare) }
func (p *stagePlugin) BuildSandbox(context.Context, engines.SandboxBuilder) error {
	return p.at(taskrun.StageBuildSandbox)
}
func (p *stagePlugin) Started(context.Context, engines.Sandbox) error {
	return p.at(taskrun.StageStarted)
}
func (p *stagePlugin) Stopped(context.Context, engines.ResultSet) (bool, error) {
	return true, p.at(taskrun.StageStopped)
}
func (p *stagePlugin) Finished(context.Context, task.Resolution) error {
	return p.at(taskrun.StageFinished)
}
func (p *stagePlugin) Exception(context.Context, task.Resolution) error {
	return p.at(taskrun.StageException)
}
func (p *stagePlugin) Dispose(context.Context) error { return p.at(taskrun.StageDispose) }

func runOnce(t *testing.T, payload string, hooks *taskrun.Hooks, pls ...*stagePlugin) (taskrun.Outcome, string) {
	t.Helper()
	eng, err := mock.New(engines.Options{Config: json.RawMessage(`{}`)})
	require.NoError(t, err)
	r := &taskrun.Runner{Engine: eng, Hooks: hooks, Info: task.WorkerInfo{Profile: "test"}}
	for _, p := range pls {
		r.Plugins = append(r.Plugins, taskrun.NamedPlugin{Name: "p", Plugin: p})
	}
	var log bytes.Buffer
	now := time.Now()
	tc := &task.Context{TaskID: "fSX7BJxeTBeZ7VPAV6yvRg", TaskDir: t.TempDir(), Log: task.NewLog(&log),
		Definition: task.Definition{Payload: json.RawMessage(payload), Created: now, Deadline: now.Add(time.Hour), Expires: now.Add(time.Hour)}}
	out := r.Run(context.Background(), tc, nil)
	return out, log.String()
}

func TestStagesRunInTableOrder(t *testing.T) {
	p := &stagePlugin{}
	done := map[taskrun.Stage]bool{}
	out, log := runOnce(t, `{}`, &taskrun.Hooks{StageDone: func(s taskrun.Stage, _ time.Duration) { done[s] = true }}, p)
	assert.Equal(t, task.Resolution{State: task.Completed}, out.Resolution)
	assert.Nil(t, out.Exception)
	assert.Equal(t, []taskrun.Stage{taskrun.StageNewTaskPlugin, taskrun.StagePrepare, taskrun.StageBuildSandbox,
		taskrun.StageStarted, taskrun.StageStopped, taskrun.StageFinished, taskrun.StageDispose}, p.calls)
	for _, s := range []taskrun.Stage{taskrun.StagePrepare, taskrun.StageBuildSandbox, taskrun.StageStarted, taskrun.StageStopped, taskrun.StageFinished} {
		assert.True(t, done[s], "StageDone for %s", s)
	}
	assert.Contains(t, log, "profile test")
	assert.Contains(t, log, "resolution: completed")
}

func TestHooksSeeErrorsAsReturned(t *testing.T) {
	p := &stagePlugin{failAt: taskrun.StagePrepare, err: errors.New("boom")}
	var seen error
	out, _ := runOnce(t, `{}`, &taskrun.Hooks{StageError: func(s taskrun.Stage, who string, err error) {
		if s == taskrun.StagePrepare && who == "plugin p" {
			seen = err
		}
	}}, p)
	assert.EqualError(t, seen, "boom")
	assert.Equal(t, task.Resolution{State: task.Exception, Reason: task.ReasonInternalError}, out.Resolution)
	require.NotNil(t, out.Exception)
	assert.EqualError(t, out.Exception, "internal-error: plugin p: Prepare: boom")
	assert.Equal(t, []taskrun.Stage{taskrun.StageNewTaskPlugin, taskrun.StagePrepare, taskrun.StageException, taskrun.StageDispose}, p.calls)
}

// The plugins' and the engine's malformed-payload reasons are reported
// together, and no sandbox builder reaches the plugins.
func TestMalformedPayloadReasonsOfPluginsAndEngine(t *testing.T) {
	p := &stagePlugin{failAt: taskrun.StageNewTaskPlugin, err: task.MalformedPayloadf("payload.p: bad")}
	builder := false
	out, _ := runOnce(t, `{"mock": {"sleep": "soon"}}`, &taskrun.Hooks{Builder: func(engines.SandboxBuilder) { builder = true }}, p)
	assert.Equal(t, task.ReasonMalformedPayload, out.Resolution.Reason)
	require.NotNil(t, out.Exception)
	require.Len(t, out.Exception.Reasons, 2)
	assert.Equal(t, "payload.p: bad", out.Exception.Reasons[0])
	assert.Contains(t, out.Exception.Reasons[1], "payload.mock.sleep")
	assert.False(t, builder)
}

func TestCheckPayload(t *testing.T) {
	r := &taskrun.Runner{Unsupported: []taskrun.Unsupported{{Path: "features.chainOfTrust", Feature: "plugin chainoftrust"}}, Info: task.WorkerInfo{Profile: "test"}}
	require.NoError(t, r.CheckPayload(json.RawMessage(`{"features": {"chainOfTrust": false}}`)))
	var ee *task.ExceptionError
	require.ErrorAs(t, r.CheckPayload(json.RawMessage(`{"features": {"chainOfTrust": true}}`)), &ee)
	assert.Contains(t, ee.Reasons[0], "payload.features.chainOfTrust: this worker's profile (test) lacks support for it (it needs plugin chainoftrust)")
	require.ErrorAs(t, r.CheckPayload(nil), &ee)
	assert.Equal(t, task.ReasonMalformedPayload, ee.Reason)
	require.ErrorAs(t, r.CheckPayload(json.RawMessage(`{`)), &ee)
	assert.Contains(t, ee.Reasons[0], "payload: not valid JSON")
}

// TestFurtherStageErrorInTaskLog: a second plugin failing in the same
// stage is written to the task log once, named by plugin and stage,
// without the prefix repeated.
func TestFurtherStageErrorInTaskLog(t *testing.T) {
	p1 := &stagePlugin{failAt: taskrun.StageFinished, err: errors.New("first")}
	p2 := &stagePlugin{failAt: taskrun.StageFinished, err: errors.New("second")}
	_, log := runOnce(t, `{}`, nil, p1, p2)
	assert.Contains(t, log, "] plugin p: Finished: second\n")
	assert.NotContains(t, log, "plugin p: Finished: plugin p: Finished")
}
