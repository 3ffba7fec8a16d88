package plugintest_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/plugins"
	"github.com/workergen/workergen/plugins/plugintest"
	"github.com/workergen/workergen/task"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// recorder records the stages it sees; failAt makes one stage fail.
type recorder struct {
	name   string
	failAt string
	err    error
	notOK  bool

	mu    *sync.Mutex
	calls *[]string
}

func (r *recorder) add(stage string) error {
	r.mu.Lock()
	*r.calls = append(*r.calls, r.name+"."+stage)
	r.mu.Unlock()
	if stage == r.failAt {
		return r.err
	}
	return nil
}

func (r *recorder) NewTaskPlugin(context.Context, *task.Context) (plugins.TaskPlugin, error) {
	if err := r.add("New"); err != nil {
		return nil, err
	}
	return r, nil
}
func (r *recorder) Close() error                  { return nil }
func (r *recorder) Prepare(context.Context) error { return r.add("Prepare") }
func (r *recorder) BuildSandbox(context.Context, engines.SandboxBuilder) error {
	return r.add("BuildSandbox")
}
func (r *recorder) Started(context.Context, engines.Sandbox) error { return r.add("Started") }
func (r *recorder) Stopped(context.Context, engines.ResultSet) (bool, error) {
	return !r.notOK, r.add("Stopped")
}
func (r *recorder) Finished(context.Context, task.Resolution) error  { return r.add("Finished") }
func (r *recorder) Exception(context.Context, task.Resolution) error { return r.add("Exception") }
func (r *recorder) Dispose(context.Context) error                    { return r.add("Dispose") }
func (r *recorder) RunEndedEarly(context.Context, *task.Context, task.Resolution) error {
	return r.add("RunEndedEarly")
}

func pair() (*recorder, *recorder, *[]string) {
	var mu sync.Mutex
	var calls []string
	return &recorder{name: "a", mu: &mu, calls: &calls}, &recorder{name: "b", mu: &mu, calls: &calls}, &calls
}

func TestStageOrder(t *testing.T) {
	a, b, calls := pair()
	res := plugintest.Run(t, plugintest.Case{Plugins: []plugins.Plugin{a, b}})
	require.Empty(t, res.Errors)
	assert.Equal(t, task.Resolution{State: task.Completed}, res.Resolution)
	assert.Equal(t, strings.Fields(`a.New b.New a.Prepare b.Prepare a.BuildSandbox b.BuildSandbox
		a.Started b.Started a.Stopped b.Stopped a.Finished b.Finished b.Dispose a.Dispose`), *calls)
}

func TestStoppedNotOKFails(t *testing.T) {
	a, b, _ := pair()
	b.notOK = true
	res := plugintest.Run(t, plugintest.Case{Plugins: []plugins.Plugin{a, b}})
	assert.Equal(t, task.Resolution{State: task.Failed}, res.Resolution)
	assert.False(t, res.StoppedOK)
}

// A malformed payload does not stop NewTaskPlugin: the later plugins (and
// the engine) still decode theirs, as in the worker, so the task author
// sees every reason at once. Plugins that refused hear about the end
// through RunEndedEarly, created ones through Exception.
func TestEarlyEnd(t *testing.T) {
	a, b, calls := pair()
	a.failAt, a.err = "New", task.MalformedPayloadf("payload.x: bad")
	res := plugintest.Run(t, plugintest.Case{Plugins: []plugins.Plugin{a, b}})
	assert.Equal(t, task.Resolution{State: task.Exception, Reason: task.ReasonMalformedPayload}, res.Resolution)
	assert.Equal(t, []string{"a.New", "b.New", "b.Exception", "a.RunEndedEarly", "b.Dispose"}, *calls)
	assert.Contains(t, res.Log, "payload.x: bad")
	assert.Nil(t, res.Builder, "no sandbox was built")
}

// An error other than malformed-payload ends the run at once: later
// plugins are not created and hear about the end through RunEndedEarly.
func TestEarlyEndOnOtherError(t *testing.T) {
	a, b, calls := pair()
	a.failAt, a.err = "New", task.ResourceUnavailable(errors.New("no disk"))
	res := plugintest.Run(t, plugintest.Case{Plugins: []plugins.Plugin{a, b}})
	assert.Equal(t, task.Resolution{State: task.Exception, Reason: task.ReasonResourceUnavailable}, res.Resolution)
	assert.Equal(t, []string{"a.New", "a.RunEndedEarly", "b.RunEndedEarly"}, *calls)
}

// A plugin test sees every malformed-payload reason, as the worker reports
// them: two plugins each rejecting the payload give both reasons.
func TestEveryMalformedPayloadReason(t *testing.T) {
	a, b, _ := pair()
	a.failAt, a.err = "New", task.MalformedPayloadf("payload.a: bad")
	b.failAt, b.err = "New", task.MalformedPayloadf("payload.b: bad too")
	res := plugintest.Run(t, plugintest.Case{Plugins: []plugins.Plugin{a, b}})
	assert.Equal(t, task.Resolution{State: task.Exception, Reason: task.ReasonMalformedPayload}, res.Resolution)
	var ee *task.ExceptionError
	require.ErrorAs(t, res.Exception, &ee)
	assert.Equal(t, []string{"payload.a: bad", "payload.b: bad too"}, ee.Reasons)
	assert.Contains(t, res.Log, "payload.a: bad")
	assert.Contains(t, res.Log, "payload.b: bad too")
}

// With a PayloadSchema the payload is checked first, as the worker checks
// its profile's composed schema; no plugin is created for a payload it
// refuses.
func TestPayloadSchema(t *testing.T) {
	a, b, calls := pair()
	res := plugintest.Run(t, plugintest.Case{
		Plugins:       []plugins.Plugin{a, b},
		Payload:       map[string]any{"bogus": 1},
		PayloadSchema: []byte(`{"type": "object", "additionalProperties": false, "properties": {"mock": {}}}`),
	})
	assert.Equal(t, task.Resolution{State: task.Exception, Reason: task.ReasonMalformedPayload}, res.Resolution)
	assert.ErrorContains(t, res.Exception, "bogus")
	assert.Equal(t, []string{"a.RunEndedEarly", "b.RunEndedEarly"}, *calls)
}

func TestExceptionInStage(t *testing.T) {
	a, b, calls := pair()
	b.failAt, b.err = "Prepare", errors.New("boom")
	res := plugintest.Run(t, plugintest.Case{Plugins: []plugins.Plugin{a, b}})
	assert.Equal(t, task.Resolution{State: task.Exception, Reason: task.ReasonInternalError}, res.Resolution)
	assert.EqualError(t, res.Err(plugintest.StagePrepare), "boom")
	assert.Equal(t, strings.Fields(`a.New b.New a.Prepare b.Prepare a.Exception b.Exception b.Dispose a.Dispose`), *calls)
}

func TestFinishedErrorBecomesException(t *testing.T) {
	a, b, calls := pair()
	a.failAt, a.err = "Finished", task.ResourceUnavailable(errors.New("upload"))
	res := plugintest.Run(t, plugintest.Case{Plugins: []plugins.Plugin{a, b}})
	assert.Equal(t, task.Resolution{State: task.Exception, Reason: task.ReasonResourceUnavailable}, res.Resolution)
	assert.Contains(t, *calls, "b.Exception")
}

func TestSinkReadsContent(t *testing.T) {
	s := &plugintest.Sink{}
	err := s.Publish(context.Background(), task.Artifact{
		Name: "x", Kind: task.ArtifactFile,
		Open: func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader("data")), nil },
	})
	require.NoError(t, err)
	require.NoError(t, s.Publish(context.Background(), task.Artifact{Name: "y", Kind: task.ArtifactLink, LinkTo: "x"}))
	got := s.Artifacts()
	require.Len(t, got, 2)
	assert.Equal(t, "data", string(got[0].Content))
	assert.Equal(t, int64(4), got[0].Read)
	assert.Nil(t, got[0].Open)
	assert.Equal(t, "x", got[1].LinkTo)
	assert.Error(t, s.Publish(context.Background(), task.Artifact{Name: "z", Kind: task.ArtifactFile}), "file artifact without Open")
}
