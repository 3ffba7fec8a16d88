package worker

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/plugins"
	"github.com/workergen/workergen/task"
	"github.com/workergen/workergen/taskcluster"
	"github.com/workergen/workergen/taskcluster/localqueue"
	"github.com/workergen/workergen/worker/config"
	"github.com/workergen/workergen/worker/taskrun"
)

// artifactPlugin publishes the payload's `file` string as
// public/file.txt (gzip), plus a link to it, in Stopped.
type artifactPlugin struct{}

func (artifactPlugin) Close() error { return nil }
func (artifactPlugin) NewTaskPlugin(_ context.Context, tc *task.Context) (plugins.TaskPlugin, error) {
	var p struct {
		File *string `json:"file"`
	}
	_ = json.Unmarshal(tc.Definition.Payload, &p)
	return &artifactTask{tc: tc, content: p.File}, nil
}

type artifactTask struct {
	plugins.Base
	tc      *task.Context
	content *string
}

func (a *artifactTask) Stopped(ctx context.Context, _ engines.ResultSet) (bool, error) {
	if a.content == nil {
		return true, nil
	}
	c := *a.content
	err := a.tc.Artifacts.Publish(ctx, task.Artifact{Name: "public/with space+plus.txt", Kind: task.ArtifactFile,
		ContentType: "text/plain", ContentEncoding: "gzip", Size: int64(len(c)), Expires: a.tc.Definition.Expires,
		Open: func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(c)), nil }})
	if err != nil {
		return false, err
	}
	return true, a.tc.Artifacts.Publish(ctx, task.Artifact{Name: "public/link.txt", Kind: task.ArtifactLink, LinkTo: "public/with space+plus.txt", Expires: a.tc.Definition.Expires})
}

type queueEnv struct {
	t      *testing.T
	server *localqueue.Server
	http   *httptest.Server
	down   atomic.Bool // answer 503 to everything while set
	// before, when set, sees each request before the Queue does (and may
	// hold it).
	before atomic.Pointer[func(*http.Request)]
	client *taskcluster.Client
}

const testPool = "workergen-test/fake"

func newQueueEnv(t *testing.T, claimTimeout time.Duration, opts ...func(*localqueue.Options)) *queueEnv {
	t.Helper()
	o := localqueue.Options{
		Dir:          t.TempDir(),
		ClaimTimeout: claimTimeout,
		LongPoll:     500 * time.Millisecond,
		NoSync:       true,
		Clients: []localqueue.Client{{ClientID: "worker", AccessToken: "worker-token",
			Scopes: []string{"queue:claim-work:" + testPool, "queue:worker-id:test-group/*"}}},
	}
	for _, f := range opts {
		f(&o)
	}
	s, err := localqueue.New(o)
	require.NoError(t, err)
	env := &queueEnv{t: t, server: s}
	env.http = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if env.down.Load() {
			http.Error(w, `{"code": "ServiceUnavailable", "message": "down for a test"}`, http.StatusServiceUnavailable)
			return
		}
		if f := env.before.Load(); f != nil {
			(*f)(r)
		}
		s.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(func() { env.http.Close(); _ = s.Close() })
	env.client = &taskcluster.Client{RootURL: env.http.URL,
		Credentials:     taskcluster.StaticCredentials(taskcluster.Credentials{ClientID: "worker", AccessToken: "worker-token"}),
		InitialInterval: 20 * time.Millisecond, MaxInterval: 200 * time.Millisecond}
	return env
}

func (e *queueEnv) createTask(payload string, retries int) string {
	e.t.Helper()
	id := NewSlugID()
	now := time.Now().UTC()
	def := map[string]any{
		"taskQueueId": testPool, "schedulerId": "tests", "taskGroupId": id,
		"created": now.Format(time.RFC3339Nano), "deadline": now.Add(time.Hour).Format(time.RFC3339Nano),
		"expires": now.Add(48 * time.Hour).Format(time.RFC3339Nano), "retries": retries,
		"payload":  json.RawMessage(payload),
		"metadata": map[string]string{"name": "t", "description": "d", "owner": "o@example.com", "source": "https://example.com"},
	}
	_, err := e.server.CreateTaskJSON(context.Background(), id, def)
	require.NoError(e.t, err)
	return id
}

func (e *queueEnv) worker(capacity, tasks int, pls ...*recPlugin) (*Worker, *fakeEngine) {
	e.t.Helper()
	r, eng := newTestRunner(e.t, pls...)
	r.Plugins = append(r.Plugins, taskrun.NamedPlugin{Name: "artifact", Plugin: artifactPlugin{}})
	cfg := &Config{WorkerPoolID: testPool, WorkerGroup: "test-group", WorkerID: "w1", Capacity: capacity,
		TasksDir: e.t.TempDir(), ReclaimMargin: 60, ShutdownGracePeriod: 0, NumberOfTasksToRun: tasks,
		ArtifactUpload: "s3", UploadConcurrency: 2}
	return &Worker{Runner: r, Config: cfg, Client: e.client, ClaimPollInterval: 50 * time.Millisecond}, eng
}

func (e *queueEnv) status(id string) localqueue.TaskStatus {
	st, err := e.server.Status(id)
	require.NoError(e.t, err)
	return st
}

func runState(st localqueue.TaskStatus, run int) string {
	if run >= len(st.Runs) {
		return "<no run>"
	}
	r := st.Runs[run]
	if r.State == "exception" {
		return r.State + "/" + r.ReasonResolved
	}
	return r.State
}

func TestWorkResolvesEachRunOnce(t *testing.T) {
	env := newQueueEnv(t, time.Minute)
	ok := env.createTask(`{"output": "hi\n", "file": ""}`, 0)
	failed := env.createTask(`{"exit": 2}`, 0)
	malformed := env.createTask(`{"exit": "two"}`, 0)
	w, _ := env.worker(1, 3)
	require.NoError(t, w.Work(context.Background()))
	assert.Equal(t, "completed", runState(env.status(ok), 0))
	assert.Equal(t, "failed", runState(env.status(failed), 0))
	assert.Equal(t, "exception/malformed-payload", runState(env.status(malformed), 0))
	assert.Equal(t, Stats{Claimed: 3, Resolved: 3}, w.Stats())

	arts, err := env.server.Artifacts(ok, 0)
	require.NoError(t, err)
	names := map[string]localqueue.Artifact{}
	for _, a := range arts {
		names[a.Name] = a
	}
	require.Contains(t, names, "public/with space+plus.txt", "0-byte artifact with space and + in its name")
	assert.Equal(t, "s3", names["public/with space+plus.txt"].StorageType)
	assert.Equal(t, "link", names["public/link.txt"].StorageType)
}

// TestNextClaimGoesOutWithTheResolution: at capacity 1 a finished run's
// unit of capacity is free once its resolution is being reported, so the
// next claimWork does not wait for reportCompleted's answer: here the
// Queue holds the first reportCompleted until a claimWork arrives (for at
// most 10 s, which a worker claiming after the answer would use up).
func TestNextClaimGoesOutWithTheResolution(t *testing.T) {
	env := newQueueEnv(t, time.Minute)
	first := env.createTask(`{"output": "one\n"}`, 0)
	second := env.createTask(`{"output": "two\n"}`, 0)
	var (
		mu          sync.Mutex
		resolving   bool
		claimWhile  = make(chan struct{})
		overlapSeen bool
	)
	hook := func(r *http.Request) {
		switch {
		case strings.Contains(r.URL.Path, "/claim-work/"):
			mu.Lock()
			if resolving && !overlapSeen {
				overlapSeen = true
				close(claimWhile)
			}
			mu.Unlock()
		case strings.HasSuffix(r.URL.Path, "/runs/0/completed") && strings.Contains(r.URL.Path, first):
			mu.Lock()
			resolving = true
			mu.Unlock()
			select {
			case <-claimWhile:
			case <-time.After(10 * time.Second):
			}
			mu.Lock()
			resolving = false
			mu.Unlock()
		}
	}
	env.before.Store(&hook)
	w, _ := env.worker(1, 2)
	require.NoError(t, w.Work(context.Background()))
	assert.Equal(t, "completed", runState(env.status(first), 0))
	assert.Equal(t, "completed", runState(env.status(second), 0))
	mu.Lock()
	defer mu.Unlock()
	assert.True(t, overlapSeen, "the next claimWork went out while the first run's reportCompleted was unanswered")
}

// TestUnansweredResolutionsAreBounded: a Queue slow to answer
// reportCompleted does not make the worker claim run after run while the
// reports pile up. At capacity 1 at most two runs are unresolved at
// once, the one being reported and the next (as many as the journal
// reserves slots for): here every reportCompleted is held; once two are
// held, a claimWork within 2 s (a worker without the bound sends it at
// once) is the failure, then they are let go.
func TestUnansweredResolutionsAreBounded(t *testing.T) {
	env := newQueueEnv(t, time.Minute)
	var ids []string
	for range 4 {
		ids = append(ids, env.createTask(`{"output": "x\n"}`, 0))
	}
	var (
		mu          sync.Mutex
		held, most  int
		release     = make(chan struct{})
		released    bool
		claimsWhile int
	)
	hook := func(r *http.Request) {
		switch {
		case strings.Contains(r.URL.Path, "/claim-work/"):
			mu.Lock()
			if held >= 2 && !released {
				claimsWhile++
			}
			mu.Unlock()
		case strings.HasSuffix(r.URL.Path, "/completed"):
			mu.Lock()
			held++
			most = max(most, held)
			if held == 2 && !released {
				go func() {
					time.Sleep(2 * time.Second)
					mu.Lock()
					released = true
					mu.Unlock()
					close(release)
				}()
			}
			mu.Unlock()
			<-release
			mu.Lock()
			held--
			mu.Unlock()
		}
	}
	env.before.Store(&hook)
	w, _ := env.worker(1, len(ids))
	require.NoError(t, w.Work(context.Background()))
	for _, id := range ids {
		assert.Equal(t, "completed", runState(env.status(id), 0))
	}
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, 0, claimsWhile, "claimWork went out while two runs' reportCompleted were unanswered")
	assert.LessOrEqual(t, most, 2, "reportCompleted calls unanswered at once")
}

func TestWorkKeepsClaimAliveAcrossReclaims(t *testing.T) {
	env := newQueueEnv(t, 2*time.Second)
	id := env.createTask(`{"sleepMs": 5000}`, 0)
	w, _ := env.worker(1, 1)
	require.NoError(t, w.Work(context.Background()))
	st := env.status(id)
	require.Len(t, st.Runs, 1, "no claim expired, so no second run")
	assert.Equal(t, "completed", runState(st, 0))
}

func TestWorkCancelledTaskIsAbortedAndNotReported(t *testing.T) {
	env := newQueueEnv(t, 2*time.Second)
	id := env.createTask(`{"block": true}`, 0)
	w, eng := env.worker(1, 1)
	go func() {
		<-eng.started
		_, err := env.server.Cancel(id)
		assert.NoError(t, err)
	}()
	require.NoError(t, w.Work(context.Background()))
	assert.Equal(t, "exception/canceled", runState(env.status(id), 0))
	assert.Equal(t, int64(0), w.Stats().Resolved, "nothing reported for a run the Queue took back")
}

func TestWorkShutdownResolvesWorkerShutdown(t *testing.T) {
	env := newQueueEnv(t, time.Minute)
	id := env.createTask(`{"block": true}`, 2)
	w, eng := env.worker(1, 0)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-eng.started; cancel() }()
	require.NoError(t, w.Work(ctx))
	st := env.status(id)
	assert.Equal(t, "exception/worker-shutdown", runState(st, 0))
	require.Len(t, st.Runs, 2, "worker-shutdown creates a new run")
	assert.Equal(t, "pending", runState(st, 1))
}

func TestWorkSurvivesQueueOutage(t *testing.T) {
	env := newQueueEnv(t, 3*time.Second)
	id := env.createTask(`{"sleepMs": 300}`, 0)
	w, eng := env.worker(1, 1)
	go func() {
		<-eng.started
		env.down.Store(true)
		time.Sleep(1500 * time.Millisecond)
		env.down.Store(false)
	}()
	require.NoError(t, w.Work(context.Background()))
	assert.Equal(t, "completed", runState(env.status(id), 0))
	assert.Equal(t, int64(1), w.Stats().Resolved)
}

// offsetClock is a clock a fixed offset from this machine's.
type offsetClock time.Duration

func (c offsetClock) Now() time.Time { return time.Now().Add(time.Duration(c)) }

// A Queue whose clock is 10 minutes ahead hands out a takenUntil that, read
// on the worker's clock, looks 10 minutes later than it is. The worker
// corrects it from the answers' Date header and reclaims in time; read
// as is, the claim would expire mid-task.
func TestWorkReclaimsWhenTheQueueClockIsAhead(t *testing.T) {
	// Reclaims come half-way through each 6 s claim, so a loaded machine
	// has 3 s to get each one through; the task outlives its first claim.
	env := newQueueEnv(t, 6*time.Second, func(o *localqueue.Options) {
		o.Clock = offsetClock(10 * time.Minute)
		o.ExpireInterval = 100 * time.Millisecond
	})
	id := env.createTask(`{"sleepMs": 7000}`, 0)
	w, _ := env.worker(1, 1)
	require.NoError(t, w.Work(context.Background()))
	st := env.status(id)
	assert.Equal(t, "completed", runState(st, 0))
	assert.Len(t, st.Runs, 1)
	assert.InDelta(t, (10 * time.Minute).Seconds(), w.client().Skew.Offset().Seconds(), 2)
}

func TestWorkCapacity(t *testing.T) {
	env := newQueueEnv(t, time.Minute)
	var ids []string
	for range 8 {
		ids = append(ids, env.createTask(`{"block": true}`, 0))
	}
	w, eng := env.worker(8, 0)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 8 {
			<-eng.started // all 8 run at the same time
		}
		cancel()
	}()
	require.NoError(t, w.Work(ctx))
	wg.Wait()
	for _, id := range ids {
		assert.Equal(t, "exception/worker-shutdown", runState(env.status(id), 0))
	}
}

func TestWorkIdleTimeout(t *testing.T) {
	env := newQueueEnv(t, time.Minute)
	w, _ := env.worker(1, 0)
	w.Config.IdleTimeout = 1
	require.NoError(t, w.Work(context.Background()))
	assert.Equal(t, int64(0), w.Stats().Claimed)
}

func TestWorkStopsOnRefusedClaim(t *testing.T) {
	env := newQueueEnv(t, time.Minute)
	w, _ := env.worker(1, 0)
	c := *env.client
	c.Credentials = taskcluster.StaticCredentials(taskcluster.Credentials{ClientID: "worker", AccessToken: "wrong"})
	w.Client = &c
	err := w.Work(context.Background())
	require.ErrorIs(t, err, ErrConfig)
	assert.Contains(t, err.Error(), "401")
	assert.Contains(t, err.Error(), "queue:claim-work:"+testPool)
}

func TestCheckWorkConfig(t *testing.T) {
	cfg := &Config{RootURL: "http://q", Credentials: config.Credentials{ClientID: "c", AccessToken: "t", Certificate: "{not json"},
		WorkerPoolID: "nopool", WorkerGroup: "g", WorkerID: "w", ArtifactUpload: "ftp"}
	err := checkWorkConfig(cfg)
	require.ErrorIs(t, err, ErrConfig)
	for _, want := range []string{"config.credentials.certificate", "config.workerPoolId", "config.artifactUpload"} {
		assert.Contains(t, err.Error(), want)
	}
}

// TestTasksDirHasOneWorker: a second worker started on the tasksDir of a
// working one fails at once with an error naming the directory and the
// process holding it, and leaves the first one's run alone (a worker that
// recovered it would kill the task and resolve it exception); once the
// first worker is gone, the tasksDir is free again.
func TestTasksDirHasOneWorker(t *testing.T) {
	env := newQueueEnv(t, time.Minute)
	id := env.createTask(`{"sleepMs": 300}`, 0)
	first, eng := env.worker(1, 1)
	started := make(chan struct{})
	eng.onStart = func(*task.Context) { close(started) }
	done := make(chan error, 1)
	go func() { done <- first.Work(context.Background()) }()
	<-started

	second, _ := env.worker(1, 1)
	second.Config.TasksDir = first.Config.TasksDir
	err := second.Work(context.Background())
	require.ErrorIs(t, err, ErrConfig)
	assert.ErrorContains(t, err, "tasksDir "+first.Config.TasksDir+" is in use by worker process "+strconv.Itoa(os.Getpid()))
	assert.ErrorContains(t, err, "give each worker its own tasksDir")

	require.NoError(t, <-done)
	assert.Equal(t, "completed", runState(env.status(id), 0), "the first worker's run was not recovered by the second")
	third, _ := env.worker(1, 0)
	third.Config.TasksDir = first.Config.TasksDir
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	assert.NoError(t, third.Work(ctx), "the lock went with the first worker")
}
