package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/task"
	"github.com/workergen/workergen/worker/schema"
	"github.com/workergen/workergen/worker/taskrun"
)

const fakeSchema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "exit": {"type": "integer"},
    "output": {"type": "string"},
    "block": {"type": "boolean"},
    "panic": {"type": "string"},
    "sleepMs": {"type": "integer"},
    "file": {"type": "string"},
    "env": {"type": "object", "additionalProperties": {"type": "string"}}
  }
}`

func newTestRunner(t *testing.T, pls ...*recPlugin) (*Runner, *fakeEngine) {
	t.Helper()
	sch, err := schema.Compile("payload.schema.json", []byte(fakeSchema))
	require.NoError(t, err)
	eng := newFakeEngine()
	r := &Runner{Engine: eng, Payload: sch, Info: task.WorkerInfo{Profile: "test", Version: "0.0.0-test", Engine: "fake"},
		Unsupported: []Unsupported{{Path: "mounts", Feature: "plugin mounts"}, {Path: "features.chainOfTrust", Feature: "plugin chainoftrust"}}}
	for _, p := range pls {
		r.Plugins = append(r.Plugins, taskrun.NamedPlugin{Name: p.name, Plugin: p})
	}
	return r, eng
}

type testRun struct {
	tc  *task.Context
	log *bytes.Buffer
}

func newTC(t *testing.T, payload string) testRun {
	t.Helper()
	var buf bytes.Buffer
	now := time.Now()
	return testRun{log: &buf, tc: &task.Context{
		TaskID: "abcdefghijklmnopqrstuv", RunID: 0,
		Definition: task.Definition{Payload: json.RawMessage(payload), Created: now, Deadline: now.Add(time.Hour), Expires: now.Add(48 * time.Hour)},
		TaskDir:    t.TempDir(), Log: task.NewLog(&buf), Artifacts: &DirSink{Dir: t.TempDir()},
	}}
}

func TestRunCompletedAndStageOrder(t *testing.T) {
	a, b := &recPlugin{name: "a"}, &recPlugin{name: "b"}
	r, _ := newTestRunner(t, a, b)
	tr := newTC(t, `{"output": "hello\n"}`)
	out := r.Run(context.Background(), tr.tc, nil)
	assert.Equal(t, task.Resolution{State: task.Completed}, out.Resolution)
	assert.Equal(t, 0, out.ExitCode)
	want := []string{"New", "Prepare", "BuildSandbox", "Started", "Stopped", "Finished:completed", "Dispose"}
	assert.Equal(t, want, a.Calls())
	assert.Equal(t, want, b.Calls())
	log := tr.log.String()
	assert.Contains(t, log, "hello\n")
	assert.Contains(t, log, "profile test")
	assert.Contains(t, log, "resolution: completed")
	assert.Less(t, strings.Index(log, "profile test"), strings.Index(log, "hello"), "header comes first")
}

func TestRunFailedExitCode(t *testing.T) {
	a := &recPlugin{name: "a"}
	r, _ := newTestRunner(t, a)
	tr := newTC(t, `{"exit": 3}`)
	out := r.Run(context.Background(), tr.tc, nil)
	assert.Equal(t, task.Failed, out.Resolution.State)
	assert.Equal(t, 3, out.ExitCode)
	assert.Contains(t, tr.log.String(), "exit code: 3")
	assert.Contains(t, a.Calls(), "Finished:failed")
}

func TestRunPluginMakesSuccessFail(t *testing.T) {
	a := &recPlugin{name: "a", notOK: true}
	r, _ := newTestRunner(t, a)
	out := r.Run(context.Background(), newTC(t, `{}`).tc, nil)
	assert.Equal(t, task.Failed, out.Resolution.State)
}

func TestRunMalformedPayloadSchema(t *testing.T) {
	a := &recPlugin{name: "a"}
	r, _ := newTestRunner(t, a)
	tr := newTC(t, `{"exit": "three", "bogus": 1, "sleepMS": 5}`)
	out := r.Run(context.Background(), tr.tc, nil)
	assert.Equal(t, task.Resolution{State: task.Exception, Reason: task.ReasonMalformedPayload}, out.Resolution)
	joined := strings.Join(out.Reasons, "\n")
	assert.Contains(t, joined, "payload.exit")
	assert.Contains(t, joined, `payload: additional properties 'bogus', 'sleepMS' not allowed; did you mean "sleepMs" for "sleepMS"?`)
	assert.Contains(t, tr.log.String(), "payload.exit", "reasons are in the task log")
	// No task plugin was created, so the plugin hears about the run only
	// through RunEndedEarly.
	assert.Equal(t, []string{"Early:exception/malformed-payload"}, a.Calls())
}

func TestRunUnsupportedField(t *testing.T) {
	r, _ := newTestRunner(t)
	tr := newTC(t, `{"mounts": [], "features": {"chainOfTrust": true}}`)
	out := r.Run(context.Background(), tr.tc, nil)
	assert.Equal(t, task.ReasonMalformedPayload, out.Resolution.Reason)
	joined := strings.Join(out.Reasons, "\n")
	assert.Contains(t, joined, "payload.mounts: this worker's profile (test) lacks support")
	assert.Contains(t, joined, "plugin chainoftrust")

	// A feature flag set to false is not a use of the feature; the schema
	// still decides about the field.
	out = r.Run(context.Background(), newTC(t, `{"features": {"chainOfTrust": false}}`).tc, nil)
	assert.NotContains(t, strings.Join(out.Reasons, "\n"), "lacks support")
}

func TestRunPanicsBecomeInternalError(t *testing.T) {
	for _, stage := range []string{"New", "Prepare", "BuildSandbox", "Started", "Stopped", "Finished:completed"} {
		t.Run("plugin-"+stage, func(t *testing.T) {
			a := &recPlugin{name: "a", panicIn: stage}
			r, _ := newTestRunner(t, a)
			out := r.Run(context.Background(), newTC(t, `{}`).tc, nil)
			assert.Equal(t, task.Resolution{State: task.Exception, Reason: task.ReasonInternalError}, out.Resolution)
			if stage != "New" {
				assert.Contains(t, a.Calls(), "Dispose", "task plugin disposed after a panic")
			}
		})
	}
	for _, where := range []string{"builder", "start", "wait"} {
		t.Run("engine-"+where, func(t *testing.T) {
			a := &recPlugin{name: "a"}
			r, _ := newTestRunner(t, a)
			out := r.Run(context.Background(), newTC(t, `{"panic": "`+where+`"}`).tc, nil)
			assert.Equal(t, task.ReasonInternalError, out.Resolution.Reason)
			assert.Contains(t, a.Calls(), "Exception:exception/internal-error")
			assert.Contains(t, a.Calls(), "Dispose")
		})
	}
}

func TestRunExceptionFromStage(t *testing.T) {
	a := &recPlugin{name: "a", failIn: "Stopped", failErr: task.IntermittentTask("exit code 3 is listed")}
	b := &recPlugin{name: "b"}
	r, _ := newTestRunner(t, a, b)
	out := r.Run(context.Background(), newTC(t, `{"exit": 3}`).tc, nil)
	assert.Equal(t, task.Resolution{State: task.Exception, Reason: task.ReasonIntermittentTask}, out.Resolution)
	assert.Contains(t, b.Calls(), "Stopped", "every plugin still sees the result")
	assert.Contains(t, b.Calls(), "Exception:exception/intermittent-task")
	assert.NotContains(t, b.Calls(), "Finished:failed")
}

func TestRunFinishedFailureChangesResolution(t *testing.T) {
	a := &recPlugin{name: "a", failIn: "Finished:completed", failErr: task.ResourceUnavailable(errors.New("upload failed"))}
	r, _ := newTestRunner(t, a)
	out := r.Run(context.Background(), newTC(t, `{}`).tc, nil)
	assert.Equal(t, task.Resolution{State: task.Exception, Reason: task.ReasonResourceUnavailable}, out.Resolution)
}

func TestRunShutdownAndCancel(t *testing.T) {
	t.Run("shutdown", func(t *testing.T) {
		a := &recPlugin{name: "a"}
		r, eng := newTestRunner(t, a)
		ctl := taskrun.NewControl()
		go func() { <-eng.started; ctl.Shutdown() }()
		out := r.Run(context.Background(), newTC(t, `{"block": true}`).tc, ctl)
		assert.Equal(t, task.Resolution{State: task.Exception, Reason: task.ReasonWorkerShutdown}, out.Resolution)
		assert.True(t, out.Reported())
		assert.Contains(t, a.Calls(), "Stopped", "results are still collected")
		assert.Contains(t, a.Calls(), "Exception:exception/worker-shutdown")
	})
	t.Run("cancel", func(t *testing.T) {
		a := &recPlugin{name: "a"}
		r, eng := newTestRunner(t, a)
		ctl := taskrun.NewControl()
		go func() { <-eng.started; ctl.Cancel() }()
		out := r.Run(context.Background(), newTC(t, `{"block": true}`).tc, ctl)
		assert.False(t, out.Reported())
		assert.NotContains(t, a.Calls(), "Stopped")
		assert.Contains(t, a.Calls(), "Dispose")
	})
	t.Run("shutdown before start", func(t *testing.T) {
		r, _ := newTestRunner(t)
		ctl := taskrun.NewControl()
		ctl.Shutdown()
		out := r.Run(context.Background(), newTC(t, `{"block": true}`).tc, ctl)
		assert.Equal(t, task.ReasonWorkerShutdown, out.Resolution.Reason)
	})
}

func TestRunLocalWritesManifest(t *testing.T) {
	r, _ := newTestRunner(t)
	out := t.TempDir()
	def, err := ParseTaskFile([]byte(`{"output": "line without newline"}`), time.Now())
	require.NoError(t, err)
	res, err := RunLocal(context.Background(), r, LocalRun{TaskID: NewSlugID(), Definition: def, OutputDir: out})
	require.NoError(t, err)
	assert.Equal(t, "completed", res.Manifest.Resolution)
	data, err := os.ReadFile(filepath.Join(out, "task.log"))
	require.NoError(t, err)
	assert.Contains(t, string(data), "line without newline\n[workergen ", "the task's last line is kept and the footer starts on its own line")
	_, err = os.Stat(filepath.Join(out, "manifest.json"))
	require.NoError(t, err)
	_, err = os.Stat(filepath.Join(out, "task"))
	assert.True(t, os.IsNotExist(err), "task directory removed")
}

func TestRunCollectsMalformedReasonsFromAllPlugins(t *testing.T) {
	a := &recPlugin{name: "a", failIn: "New", failErr: task.MalformedPayload("payload.a: bad")}
	b := &recPlugin{name: "b"}
	c := &recPlugin{name: "c", failIn: "New", failErr: task.MalformedPayload("payload.c: bad too")}
	r, _ := newTestRunner(t, a, b, c)
	tr := newTC(t, `{}`)
	out := r.Run(context.Background(), tr.tc, nil)
	assert.Equal(t, task.ReasonMalformedPayload, out.Resolution.Reason)
	joined := strings.Join(out.Reasons, "\n")
	assert.Contains(t, joined, "payload.a: bad")
	assert.Contains(t, joined, "payload.c: bad too")
	assert.Contains(t, tr.log.String(), "payload.c: bad too")
	assert.Equal(t, []string{"New", "Exception:exception/malformed-payload", "Dispose"}, b.Calls(), "created plugins see the exception")
	assert.Equal(t, []string{"New", "Early:exception/malformed-payload"}, a.Calls(), "plugins that refused hear about the end")
}

func TestRunReportsUnsupportedAndSchemaProblemsTogether(t *testing.T) {
	r, _ := newTestRunner(t)
	out := r.Run(context.Background(), newTC(t, `{"mounts": [], "bogus": 1}`).tc, nil)
	joined := strings.Join(out.Reasons, "\n")
	assert.Contains(t, joined, "payload.mounts: this worker's profile")
	assert.Contains(t, joined, "bogus")
	assert.NotContains(t, joined, "'mounts'", "the schema does not repeat the unsupported field")
}

func TestShutdownCancelsStagesBeforeStart(t *testing.T) {
	a := &recPlugin{name: "a", blockIn: "Prepare", entered: make(chan struct{}, 1)}
	r, _ := newTestRunner(t, a)
	ctl := taskrun.NewControl()
	go func() { <-a.entered; ctl.Shutdown() }()
	out := r.Run(context.Background(), newTC(t, `{}`).tc, ctl)
	assert.Equal(t, task.Resolution{State: task.Exception, Reason: task.ReasonWorkerShutdown}, out.Resolution,
		"a long download is cut short and the run resolved worker-shutdown, not internal-error")
}

func TestShutdownAfterTheTaskEndedKeepsItsResolution(t *testing.T) {
	a := &recPlugin{name: "a", blockIn: "Stopped", entered: make(chan struct{}, 1), release: make(chan struct{})}
	r, _ := newTestRunner(t, a)
	ctl := taskrun.NewControl()
	go func() { <-a.entered; ctl.Shutdown(); close(a.release) }()
	out := r.Run(context.Background(), newTC(t, `{}`).tc, ctl)
	assert.Equal(t, task.Resolution{State: task.Completed}, out.Resolution, "the task had completed before the shutdown")
}
