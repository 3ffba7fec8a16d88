package maxruntime

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/workergen/workergen/plugins"
	"github.com/workergen/workergen/plugins/artifacts"
	"github.com/workergen/workergen/plugins/plugintest"
	"github.com/workergen/workergen/task"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeClock records timers; fireNow makes every timer fire at once (in its
// own goroutine, like time.AfterFunc).
type fakeClock struct {
	fireNow bool

	mu      sync.Mutex
	asked   []time.Duration
	stopped int
	wg      sync.WaitGroup
}

type fakeTimer struct {
	c     *fakeClock
	mu    sync.Mutex
	fired bool
	done  bool
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) Timer {
	c.mu.Lock()
	c.asked = append(c.asked, d)
	c.mu.Unlock()
	t := &fakeTimer{c: c}
	if c.fireNow {
		t.fired = true
		c.wg.Go(f)
	}
	return t
}

func (t *fakeTimer) Stop() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.c.mu.Lock()
	t.c.stopped++
	t.c.mu.Unlock()
	if t.fired || t.done {
		return false
	}
	t.done = true
	return true
}

func newTest(t *testing.T, clock Clock, maxTaskRunTime int) plugins.Plugin {
	t.Helper()
	p, err := newPlugin(plugins.Options{Worker: plugins.WorkerConfig{MaxTaskRunTime: maxTaskRunTime}}, clock, time.Second)
	require.NoError(t, err)
	return p
}

func TestNotExceeded(t *testing.T) {
	clock := &fakeClock{}
	res := plugintest.Run(t, plugintest.Case{
		Plugins: []plugins.Plugin{newTest(t, clock, 3600)},
		Payload: map[string]any{"maxRunTime": 600},
	})
	require.Empty(t, res.Errors)
	assert.Equal(t, task.Completed, res.Resolution.State)
	assert.Equal(t, []time.Duration{600 * time.Second}, clock.asked)
	assert.GreaterOrEqual(t, clock.stopped, 1)
	assert.NotContains(t, res.Log, "exceeded")
}

func TestExceededKillsAndFails(t *testing.T) {
	clock := &fakeClock{fireNow: true}
	res := plugintest.Run(t, plugintest.Case{
		Plugins: []plugins.Plugin{newTest(t, clock, 0)},
		Payload: map[string]any{"maxRunTime": 5, "mock": map[string]any{"sleep": "forever"}},
	})
	clock.wg.Wait()
	require.Empty(t, res.Errors)
	assert.Equal(t, task.Failed, res.Resolution.State)
	assert.False(t, res.StoppedOK)
	require.NotNil(t, res.TaskResult)
	assert.True(t, res.TaskResult.Killed())
	assert.Contains(t, res.Log, "maxRunTime of 5 seconds exceeded; task killed")
}

func TestExceededWithRealTimerCollectsArtifacts(t *testing.T) {
	// One "second" is a millisecond here; the task sleeps forever, so only
	// the timer can end it.
	mr, err := newPlugin(plugins.Options{}, realClock{}, time.Millisecond)
	require.NoError(t, err)
	ap, err := artifacts.New(plugins.Options{})
	require.NoError(t, err)
	res := plugintest.Run(t, plugintest.Case{
		Plugins: []plugins.Plugin{mr, ap},
		Payload: map[string]any{
			"maxRunTime": 20,
			"mock":       map[string]any{"sleep": "forever", "files": map[string]string{"out/result.txt": "partial"}},
			"artifacts":  []any{map[string]any{"type": "file", "path": "out/result.txt", "name": "public/result.txt"}},
		},
	})
	require.Empty(t, res.Errors)
	assert.Equal(t, task.Failed, res.Resolution.State)
	assert.Contains(t, res.Log, "maxRunTime of 20 seconds exceeded; task killed")
	a, ok := res.Artifact("public/result.txt")
	require.True(t, ok, "artifact collected after the kill")
	assert.Equal(t, "partial", string(a.Content))
}

func TestCapIsMalformedPayload(t *testing.T) {
	res := plugintest.Run(t, plugintest.Case{
		Plugins: []plugins.Plugin{newTest(t, &fakeClock{}, 3600)},
		Payload: map[string]any{"maxRunTime": 3601},
	})
	var ee *task.ExceptionError
	require.ErrorAs(t, res.Err(plugintest.StageNewTaskPlugin), &ee)
	assert.Equal(t, task.ReasonMalformedPayload, ee.Reason)
	assert.Contains(t, ee.Error(), "payload.maxRunTime")
	assert.Contains(t, ee.Error(), "3600")
}

func TestBounds(t *testing.T) {
	for _, v := range []string{`0`, `-1`, `1.5`, `"60"`, `true`, `1e12`} {
		res := plugintest.Run(t, plugintest.Case{
			Plugins: []plugins.Plugin{newTest(t, &fakeClock{}, 0)},
			Payload: `{"maxRunTime": ` + v + `}`,
		})
		var ee *task.ExceptionError
		require.ErrorAs(t, res.Err(plugintest.StageNewTaskPlugin), &ee, "maxRunTime %s", v)
		assert.Equal(t, task.ReasonMalformedPayload, ee.Reason)
		assert.Contains(t, ee.Error(), "payload.maxRunTime", "maxRunTime %s", v)
	}
	// 60.0 is an integer for JSON Schema (multipleOf 1).
	clock := &fakeClock{}
	res := plugintest.Run(t, plugintest.Case{Plugins: []plugins.Plugin{newTest(t, clock, 0)}, Payload: `{"maxRunTime": 60.0}`})
	require.Empty(t, res.Errors)
	assert.Equal(t, []time.Duration{time.Minute}, clock.asked)
}

func TestAbsentUsesCap(t *testing.T) {
	clock := &fakeClock{}
	res := plugintest.Run(t, plugintest.Case{Plugins: []plugins.Plugin{newTest(t, clock, 90)}})
	require.Empty(t, res.Errors)
	assert.Equal(t, []time.Duration{90 * time.Second}, clock.asked)

	clock = &fakeClock{}
	res = plugintest.Run(t, plugintest.Case{Plugins: []plugins.Plugin{newTest(t, clock, 0)}})
	require.Empty(t, res.Errors)
	assert.Empty(t, clock.asked, "no cap and no maxRunTime: no timer")
}

func TestStopIsIdempotent(t *testing.T) {
	// Stopped, Exception and Dispose may all stop the timer; none blocks.
	clock := &fakeClock{}
	res := plugintest.Run(t, plugintest.Case{
		Plugins: []plugins.Plugin{newTest(t, clock, 0)},
		Payload: map[string]any{"maxRunTime": 10, "mock": map[string]any{"error": map[string]any{"stage": "wait", "reason": "resource-unavailable"}}},
	})
	assert.Equal(t, task.Resolution{State: task.Exception, Reason: task.ReasonResourceUnavailable}, res.Resolution)
	assert.GreaterOrEqual(t, clock.stopped, 1)
}

func TestConfig(t *testing.T) {
	_, err := New(plugins.Options{Config: []byte(`{"unknown": 1}`)})
	assert.Error(t, err)
	_, err = New(plugins.Options{Worker: plugins.WorkerConfig{MaxTaskRunTime: -1}})
	assert.Error(t, err)
}
