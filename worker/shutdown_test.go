package worker

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/workergen/workergen/taskcluster/localqueue"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestShutdownNowKillsAndResolves: Shutdown(finishTasks=false) during a
// task that would never end stops claiming, kills the task at once and
// resolves the run exception/worker-shutdown; Work returns. The log line
// names the running tasks and the deadline.
func TestShutdownNowKillsAndResolves(t *testing.T) {
	env := newQueueEnv(t, time.Minute)
	id := env.createTask(`{"block": true}`, 1)
	w, eng := env.worker(1, 0)
	w.Config.ShutdownGracePeriod = 3600
	var logs lockedBuffer
	w.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	go func() { <-eng.started; w.Shutdown("graceful-termination", false) }()
	require.NoError(t, w.Work(context.Background()))
	assert.Equal(t, "exception/worker-shutdown", runState(env.status(id), 0))
	assert.Regexp(t, `graceful-termination: no new claims; 1 tasks running; exit by \d\d:\d\d:\d\d`, logs.String())
}

// TestShutdownBeforeWork: a Shutdown that comes before Work makes Work
// recover and return without claiming.
func TestShutdownBeforeWork(t *testing.T) {
	env := newQueueEnv(t, time.Minute)
	id := env.createTask(`{}`, 0)
	w, _ := env.worker(1, 0)
	w.Shutdown("test", true)
	require.NoError(t, w.Work(context.Background()))
	assert.Equal(t, int64(0), w.Stats().Claimed)
	assert.Equal(t, "pending", env.status(id).State)
}

// TestShutdownNamesClaimInFlight: a Shutdown while a claimWork long-polls
// an empty queue says the worker waits for that call (it is not cancelled,
// so no task the Queue claims meanwhile is left unseen), and Work returns
// once it has.
func TestShutdownNamesClaimInFlight(t *testing.T) {
	// A long poll of 5 s: the claim is surely still in flight when
	// Shutdown comes, on a loaded machine too.
	env := newQueueEnv(t, time.Minute, func(o *localqueue.Options) { o.LongPoll = 5 * time.Second })
	w, _ := env.worker(1, 0)
	var logs lockedBuffer
	w.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	done := make(chan error, 1)
	go func() { done <- w.Work(context.Background()) }()
	require.Eventually(t, w.claiming.Load, time.Minute, time.Millisecond, "a claimWork in flight")
	w.Shutdown("SIGTERM received", true)
	require.NoError(t, <-done)
	assert.Contains(t, logs.String(), "SIGTERM received: no new claims; 0 tasks running; exit by")
	assert.Contains(t, logs.String(), "waiting for the claimWork in flight")
}
