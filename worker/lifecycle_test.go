package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/taskcluster"
	"github.com/workergen/workergen/taskcluster/hawk"
	"github.com/workergen/workergen/taskcluster/localqueue"
)

func TestGracefulTerminationFinishTasks(t *testing.T) {
	env := newQueueEnv(t, time.Minute)
	running := env.createTask(`{"sleepMs": 1000}`, 0)
	waiting := env.createTask(`{}`, 0)
	w, eng := env.worker(1, 0)
	w.Config.ShutdownGracePeriod = 0 // a signal would stop the task at once; finish-tasks does not
	go func() { <-eng.started; w.GracefulTermination(true) }()
	require.NoError(t, w.Work(context.Background()))
	assert.Equal(t, "completed", runState(env.status(running), 0), "the running task finished")
	assert.Equal(t, "pending", runState(env.status(waiting), 0), "no task was claimed after graceful-termination")
	assert.Equal(t, StopGracefulTermination, w.StopReason())
	assert.Equal(t, ExitGracefulTermination, w.StopReason().ExitCode())
}

func TestGracefulTerminationNowSkipsTheGracePeriod(t *testing.T) {
	env := newQueueEnv(t, time.Minute)
	id := env.createTask(`{"block": true}`, 1)
	w, eng := env.worker(1, 0)
	w.Config.ShutdownGracePeriod = 3600 // would hold the task for an hour after a signal
	go func() { <-eng.started; w.GracefulTermination(false) }()
	require.NoError(t, w.Work(context.Background()))
	assert.Equal(t, "exception/worker-shutdown", runState(env.status(id), 0))
	assert.Equal(t, StopGracefulTermination, w.StopReason())
}

func TestGracefulTerminationFinishThenNow(t *testing.T) {
	env := newQueueEnv(t, time.Minute)
	id := env.createTask(`{"block": true}`, 1)
	w, eng := env.worker(1, 0)
	w.Config.ShutdownGracePeriod = 3600
	go func() {
		<-eng.started
		w.GracefulTermination(true)
		time.Sleep(200 * time.Millisecond) // the loop is draining, waiting for the task
		w.GracefulTermination(false)
	}()
	require.NoError(t, w.Work(context.Background()))
	assert.Equal(t, "exception/worker-shutdown", runState(env.status(id), 0), "finish-tasks false cut the finishing short")
}

func TestGracefulTerminationBeforeWork(t *testing.T) {
	env := newQueueEnv(t, time.Minute)
	id := env.createTask(`{}`, 0)
	w, _ := env.worker(1, 0)
	w.GracefulTermination(false)
	require.NoError(t, w.Work(context.Background()))
	assert.Equal(t, "pending", runState(env.status(id), 0), "nothing was claimed")
	assert.Equal(t, StopGracefulTermination, w.StopReason())
}

func TestStopReasons(t *testing.T) {
	env := newQueueEnv(t, time.Minute)
	w, _ := env.worker(1, 0)
	w.Config.IdleTimeout = 1
	require.NoError(t, w.Work(context.Background()))
	assert.Equal(t, StopIdle, w.StopReason(), "no worker-manager to ask: the idle timeout alone decides")
	assert.Equal(t, ExitIdle, w.StopReason().ExitCode())

	env.createTask(`{}`, 0)
	w, _ = env.worker(1, 1)
	require.NoError(t, w.Work(context.Background()))
	assert.Equal(t, StopTasksComplete, w.StopReason())
	assert.Equal(t, ExitCompleted, w.StopReason().ExitCode())

	w, _ = env.worker(1, 0)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.NoError(t, w.Work(ctx))
	assert.Equal(t, StopCancelled, w.StopReason())
	assert.Equal(t, ExitSignal, w.StopReason().ExitCode())
}

// registeredWorker registers w1 as a static worker of testPool with the
// embedded worker-manager and gives the worker its credentials.
func registeredWorker(t *testing.T, env *queueEnv, w *Worker) {
	t.Helper()
	s := env.server
	require.NoError(t, s.CreateWorkerPool(localqueue.WorkerPool{WorkerPoolID: testPool}))
	secret := hawk.NewSeed()
	require.NoError(t, s.CreateStaticWorker(testPool, "test-group", "w1", secret))
	anon := &taskcluster.Client{RootURL: env.http.URL}
	reg, err := anon.WorkerManager().RegisterWorker(context.Background(), &taskcluster.RegisterWorkerRequest{
		WorkerPoolID: testPool, ProviderID: "static", WorkerGroup: "test-group", WorkerID: "w1",
		WorkerIdentityProof: json.RawMessage(fmt.Sprintf(`{"staticSecret":%q}`, secret)),
	})
	require.NoError(t, err)
	c := *env.client
	c.Credentials = taskcluster.StaticCredentials(reg.Credentials)
	w.Client = &c
	w.WorkerManager = true
}

func TestWorkerManagerAsksToTerminate(t *testing.T) {
	env := newQueueEnv(t, time.Minute)
	id := env.createTask(`{"sleepMs": 1000}`, 0)
	waiting := env.createTask(`{}`, 0)
	w, eng := env.worker(1, 0)
	registeredWorker(t, env, w)
	w.WorkerManagerCheckInterval = 50 * time.Millisecond
	go func() {
		<-eng.started
		assert.NoError(t, env.server.SetShouldTerminate(testPool, "test-group", "w1", true, "pool is shrinking"))
	}()
	require.NoError(t, w.Work(context.Background()))
	assert.Equal(t, "completed", runState(env.status(id), 0), "the running task finished first")
	assert.Equal(t, "pending", runState(env.status(waiting), 0))
	assert.Equal(t, StopWorkerManager, w.StopReason())
	assert.Equal(t, ExitWorkerManager, w.StopReason().ExitCode())
}

func TestIdleExitWaitsForWorkerManager(t *testing.T) {
	env := newQueueEnv(t, time.Minute)
	w, _ := env.worker(1, 0)
	registeredWorker(t, env, w)
	w.Config.IdleTimeout = 1
	require.NoError(t, env.server.SetShouldTerminate(testPool, "test-group", "w1", false, "still needed"))
	asked := make(chan struct{}, 16)
	w.Logger = slog.New(&messageHandler{msg: "worker-manager says the idle worker should keep working", seen: asked})
	done := make(chan error, 1)
	go func() { done <- w.Work(context.Background()) }()
	// Two idle timeouts pass; worker-manager says no each time, so the
	// worker works on until it says yes.
	for range 2 {
		select {
		case <-asked:
		case err := <-done:
			t.Fatalf("the worker exited on idle without worker-manager's confirmation: %v", err)
		}
	}
	require.NoError(t, env.server.SetShouldTerminate(testPool, "test-group", "w1", true, "pool is shrinking"))
	require.NoError(t, <-done)
	assert.Equal(t, StopIdle, w.StopReason())
}

// messageHandler signals seen for every record with message msg.
type messageHandler struct {
	msg  string
	seen chan struct{}
}

func (h *messageHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *messageHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *messageHandler) WithGroup(string) slog.Handler            { return h }
func (h *messageHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		select {
		case h.seen <- struct{}{}:
		default:
		}
	}
	return nil
}
