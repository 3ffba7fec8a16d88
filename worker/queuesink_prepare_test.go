package worker

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/plugins"
	"github.com/workergen/workergen/plugins/tasklog"
	"github.com/workergen/workergen/task"
	"github.com/workergen/workergen/taskcluster"
	"github.com/workergen/workergen/taskcluster/localqueue"
	"github.com/workergen/workergen/worker/journal"
	"github.com/workergen/workergen/worker/taskrun"
)

// callLog is an HTTP proxy in front of the embedded Queue that records
// "METHOD kind" for every createArtifact ("POST createArtifact <name>")
// and every PUT of content ("PUT content"), and can refuse calls.
type callLog struct {
	mu    sync.Mutex
	calls []string
	// refuse, when set, gives a status to answer instead of the Queue's
	// (0: pass the call on).
	refuse func(call string, n int) int
}

const logName = "public/logs/live_backing.log"

// proxy returns a client like env.client whose calls (and the signed URLs
// the Queue hands out) go through l.
func (l *callLog) proxy(t *testing.T, env *queueEnv) *taskcluster.Client {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		call := r.Method + " other"
		switch {
		case r.Method == http.MethodPost && strings.Contains(r.URL.Path, "/artifacts/"):
			call = "POST createArtifact " + r.URL.Path[strings.Index(r.URL.Path, "/artifacts/")+len("/artifacts/"):]
		case r.Method == http.MethodPut && !strings.Contains(r.URL.Path, "/api/"):
			call = "PUT content"
		}
		l.mu.Lock()
		n := 0
		for _, c := range l.calls {
			if c == call {
				n++
			}
		}
		l.calls = append(l.calls, call)
		refuse := l.refuse
		l.mu.Unlock()
		if refuse != nil {
			if code := refuse(call, n); code != 0 {
				http.Error(w, `{"code": "InputError", "message": "refused by the test"}`, code)
				return
			}
		}
		env.server.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	c := *env.client
	c.RootURL = srv.URL
	return &c
}

// count returns how many calls were call.
func (l *callLog) count(call string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, c := range l.calls {
		if c == call {
			n++
		}
	}
	return n
}

// logArtifact returns the run's task log artifact as the Queue holds it.
func logArtifact(t *testing.T, env *queueEnv, id string) (localqueue.Artifact, bool) {
	t.Helper()
	arts, err := env.server.Artifacts(id, 0)
	require.NoError(t, err)
	for _, a := range arts {
		if a.Name == logName {
			return a, true
		}
	}
	return localqueue.Artifact{}, false
}

// decoded is a's content, gunzipped when it was uploaded gzip-encoded.
func decoded(t *testing.T, a localqueue.Artifact) string {
	t.Helper()
	if a.ContentEncoding != task.EncodingGzip {
		return string(a.Content)
	}
	zr, err := gzip.NewReader(bytes.NewReader(a.Content))
	require.NoError(t, err)
	b, err := io.ReadAll(zr)
	require.NoError(t, err)
	return string(b)
}

// withTaskLog adds the tasklog plugin (default settings) to w and makes
// it upload artifacts to storage ("s3" or "object").
func withTaskLog(t *testing.T, w *Worker, storage string) {
	t.Helper()
	tl, err := tasklog.New(plugins.Options{})
	require.NoError(t, err)
	w.Runner.Plugins = append(w.Runner.Plugins, taskrun.NamedPlugin{Name: "tasklog", Plugin: tl})
	w.Config.ArtifactUpload = storage
}

// TestTaskLogCreatedBeforeTaskEnds runs a task on a worker with the
// tasklog plugin, s3 and object: the Queue holds the log's artifact
// (created, nothing uploaded yet) before the task's sandbox starts; when
// the run is resolved the log is there, as the task wrote it and encoded
// as the Queue records it, with one createArtifact in all.
func TestTaskLogCreatedBeforeTaskEnds(t *testing.T) {
	for _, storage := range []string{taskcluster.StorageS3, taskcluster.StorageObject} {
		t.Run(storage, func(t *testing.T) {
			env := newQueueEnv(t, time.Hour)
			w, eng := env.worker(1, 1)
			withTaskLog(t, w, storage)
			calls := &callLog{}
			w.Client = calls.proxy(t, env)
			var beforeStart, uploadedBeforeStart bool
			eng.onStart = func(tc *task.Context) {
				for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
					if a, ok := logArtifact(t, env, tc.TaskID); ok {
						beforeStart, uploadedBeforeStart = true, a.Uploaded
						return
					}
				}
			}
			id := env.createTask(`{"output": "hello from the task\n"}`, 0)
			require.NoError(t, w.Work(context.Background()))

			assert.Equal(t, "completed", runState(env.status(id), 0))
			assert.True(t, beforeStart, "the log's artifact exists before the task starts")
			assert.False(t, uploadedBeforeStart, "its content comes when the task has ended")
			a, ok := logArtifact(t, env, id)
			require.True(t, ok)
			assert.True(t, a.Uploaded)
			assert.Equal(t, tasklog.ContentType, a.ContentType)
			want := task.EncodingGzip
			if storage == taskcluster.StorageObject {
				want = "" // the Object service stores the bytes as uploaded
			}
			assert.Equal(t, want, strings.TrimPrefix(a.ContentEncoding, "identity"))
			log := decoded(t, a)
			assert.Contains(t, log, "] task name: t\nhello from the task\n[workergen ")
			assert.Contains(t, log, "resolution: completed", "the footer is in the uploaded log")
			assert.Equal(t, 1, calls.count("POST createArtifact "+logName), "the early createArtifact is the only one")
		})
	}
}

// preparedSink claims a task of env and returns a Queue sink for its run
// through calls, and the run's claim.
func preparedSink(t *testing.T, env *queueEnv, calls *callLog, storage string) (*queueSink, taskcluster.TaskClaim) {
	t.Helper()
	id := env.createTask(`{}`, 0)
	resp, err := env.client.Queue().ClaimWork(context.Background(), testPool, &taskcluster.ClaimWorkRequest{WorkerGroup: "test-group", WorkerID: "w1", Tasks: 1})
	require.NoError(t, err)
	require.Len(t, resp.Tasks, 1)
	claim := resp.Tasks[0]
	c := calls.proxy(t, env)
	c.Credentials = taskcluster.StaticCredentials(claim.Credentials)
	return &queueSink{queue: c.Queue(), taskID: id, runID: claim.RunID, storageType: storage, tmpDir: t.TempDir(),
		deadline: claim.Task.Deadline}, claim
}

// logFile writes content to a file and returns the task log artifact for
// it.
func logFile(t *testing.T, content string, expires time.Time) task.Artifact {
	t.Helper()
	path := filepath.Join(t.TempDir(), "live_backing.log")
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
	return task.Artifact{Name: logName, Kind: task.ArtifactFile, Expires: expires, ContentType: tasklog.ContentType,
		ContentEncoding: task.EncodingGzip, Size: int64(len(content)), Path: path,
		Open: func() (io.ReadCloser, error) { return os.Open(path) }}
}

// TestPreparedArtifactFallbacks: Publish creates the log afresh (the Queue
// accepts the identical request again) when the early createArtifact
// failed, when its answer is too old, when the request differs (a later
// expiry), and when the store refuses the upload with the early putUrl;
// each time the log reads back unchanged.
func TestPreparedArtifactFallbacks(t *testing.T) {
	const content = "line one\nline two\n"
	cases := []struct {
		name    string
		refuse  func(call string, n int) int
		tweak   func(s *queueSink, a *task.Artifact)
		creates int
	}{
		{name: "early answer used", creates: 1},
		{name: "early createArtifact failed", creates: 2, refuse: func(call string, n int) int {
			if call == "POST createArtifact "+logName && n == 0 {
				return http.StatusBadRequest
			}
			return 0
		}},
		{name: "early answer too old", creates: 2, tweak: func(s *queueSink, _ *task.Artifact) {
			s.prepared[logName].sent = time.Now().Add(-preparedMaxAge - time.Minute)
		}},
		{name: "request differs", creates: 2, tweak: func(_ *queueSink, a *task.Artifact) {
			a.Expires = a.Expires.Add(time.Minute)
		}},
		{name: "putUrl refused", creates: 2, refuse: func(call string, n int) int {
			if call == "PUT content" && n == 0 {
				return http.StatusForbidden
			}
			return 0
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := newQueueEnv(t, time.Hour)
			calls := &callLog{refuse: c.refuse}
			sink, claim := preparedSink(t, env, calls, taskcluster.StorageS3)
			a := logFile(t, content, claim.Task.Expires.Add(-time.Hour))
			prep := a
			prep.Size = -1
			assert.True(t, task.PrepareArtifact(sink, prep))
			<-sink.prepared[logName].done
			if c.tweak != nil {
				c.tweak(sink, &a)
			}
			require.NoError(t, sink.Publish(context.Background(), a))
			got, ok := logArtifact(t, env, sink.taskID)
			require.True(t, ok)
			assert.Equal(t, content, decoded(t, got))
			assert.Equal(t, task.EncodingGzip, got.ContentEncoding)
			assert.True(t, got.Expires.Equal(a.Expires), "expires %s, want %s", got.Expires, a.Expires)
			assert.Equal(t, c.creates, calls.count("POST createArtifact "+logName))
		})
	}
}

// TestPreparedArtifactLeftover: a prepared artifact the run never
// published (the Queue cancelled the run) gets its content uploaded when
// the run ends, rather than staying on the run without content.
func TestPreparedArtifactLeftover(t *testing.T) {
	for _, storage := range []string{taskcluster.StorageS3, taskcluster.StorageObject} {
		t.Run(storage, func(t *testing.T) {
			env := newQueueEnv(t, time.Hour)
			calls := &callLog{}
			sink, claim := preparedSink(t, env, calls, storage)
			a := logFile(t, "cancelled half-way\n", claim.Task.Expires)
			a.Size = -1
			sink.PrepareArtifact(a)
			sink.PrepareArtifact(a) // a second preparation does nothing
			sink.publishLeftovers(context.Background())
			got, ok := logArtifact(t, env, sink.taskID)
			require.True(t, ok)
			assert.True(t, got.Uploaded)
			assert.Equal(t, "cancelled half-way\n", decoded(t, got))
			assert.Equal(t, 1, calls.count("POST createArtifact "+logName))
			sink.publishLeftovers(context.Background()) // nothing left
			assert.Equal(t, 1, calls.count("PUT content"))
		})
	}
}

// TestObjectArtifactPreparedOnlyNearDeadline: an object artifact's early
// answer cannot be refreshed, so it is prepared only when the task's
// deadline is near enough for its credentials to outlast the run.
func TestObjectArtifactPreparedOnlyNearDeadline(t *testing.T) {
	sink := &queueSink{storageType: taskcluster.StorageObject, deadline: time.Now().Add(objectPrepareHorizon + time.Hour)}
	sink.PrepareArtifact(task.Artifact{Name: logName, Kind: task.ArtifactFile, Expires: time.Now().Add(48 * time.Hour)})
	assert.Empty(t, sink.prepared)
	assert.False(t, sink.lengthless(logName))
	assert.False(t, task.PrepareArtifact(&DirSink{Dir: t.TempDir()}, task.Artifact{Name: logName, Kind: task.ArtifactFile}),
		"run mode's directory sink publishes only when asked")
}

// TestRecoveryUploadsLogOfPreparedArtifact: a worker died after the task
// log's artifact was created early and before its content was uploaded;
// recovery uploads the log to it. s3: with an identical createArtifact;
// object: with the upload the journal record kept, as the Queue refuses to
// create an object artifact twice (here: a proxy refuses it as upstream
// does; the embedded Queue would hand out the same upload).
func TestRecoveryUploadsLogOfPreparedArtifact(t *testing.T) {
	for _, storage := range []string{taskcluster.StorageS3, taskcluster.StorageObject} {
		t.Run(storage, func(t *testing.T) {
			env := newQueueEnv(t, time.Minute)
			w, _ := env.worker(1, 0)
			w.Config.ArtifactUpload = storage
			calls := &callLog{}
			sink, claim := preparedSink(t, env, calls, storage)
			runDir := filepath.Join(w.Config.TasksDir, sink.taskID+"-0")
			require.NoError(t, os.MkdirAll(filepath.Join(runDir, "task"), 0o755))
			logPath := filepath.Join(runDir, "live_backing.log")
			require.NoError(t, os.WriteFile(logPath, []byte("half a task log\n"), 0o600))
			sink.PrepareArtifact(task.Artifact{Name: logName, Kind: task.ArtifactFile, Expires: claim.Task.Expires,
				ContentType: tasklog.ContentType, ContentEncoding: task.EncodingGzip, Size: -1})
			<-sink.prepared[logName].done
			require.NoError(t, sink.prepared[logName].err)
			a, ok := logArtifact(t, env, sink.taskID)
			require.True(t, ok)
			require.False(t, a.Uploaded)
			j, err := w.openJournal()
			require.NoError(t, err)
			rec := &journal.Record{TaskID: sink.taskID, RunID: 0, TakenUntil: claim.TakenUntil, RunDir: runDir,
				LogPath: logPath, Credentials: claim.Credentials, Expires: claim.Task.Expires}
			if storage == taskcluster.StorageObject {
				rr := &runRecord{rec: *rec} // not written yet: no second write is scheduled
				rr.noteCreated(logName, sink.prepared[logName].resp)
				require.NotNil(t, rr.rec.LogObject)
				rec.LogObject = rr.rec.LogObject
				calls.refuse = func(call string, _ int) int {
					if call == "POST createArtifact "+logName {
						return http.StatusConflict
					}
					return 0
				}
			}
			require.NoError(t, j.Put(rec))
			w.Client = calls.proxy(t, env)

			ctx, cancel := context.WithCancel(context.Background())
			cancel() // recover, then stop at once
			require.NoError(t, w.Work(ctx))
			assert.Equal(t, "exception/worker-shutdown", runState(env.status(sink.taskID), 0))
			a, ok = logArtifact(t, env, sink.taskID)
			require.True(t, ok)
			assert.True(t, a.Uploaded)
			assert.Equal(t, "half a task log\n", decoded(t, a))
		})
	}
}

// BenchmarkPublishTaskLog times what is left between a task's end and its
// resolution for a small task log (s3, gzip) against the embedded Queue
// over loopback HTTP: "fresh" is createArtifact and the PUT; "prepared"
// only the PUT, the early createArtifact having been answered before the
// timer runs (as it is, in a run, while the task runs).
func BenchmarkPublishTaskLog(b *testing.B) {
	for _, mode := range []string{"fresh", "prepared"} {
		b.Run(mode, func(b *testing.B) {
			env := newQueueEnv(&testing.T{}, time.Hour)
			defer func() { env.http.Close(); _ = env.server.Close() }()
			id := NewSlugID()
			now := time.Now().UTC()
			_, err := env.server.CreateTaskJSON(context.Background(), id, map[string]any{
				"taskQueueId": testPool, "schedulerId": "tests", "taskGroupId": id,
				"created": now.Format(time.RFC3339Nano), "deadline": now.Add(time.Hour).Format(time.RFC3339Nano),
				"expires": now.Add(48 * time.Hour).Format(time.RFC3339Nano), "payload": map[string]any{},
				"metadata": map[string]string{"name": "t", "description": "d", "owner": "o@example.com", "source": "https://example.com"},
			})
			if err != nil {
				b.Fatal(err)
			}
			resp, err := env.client.Queue().ClaimWork(context.Background(), testPool, &taskcluster.ClaimWorkRequest{WorkerGroup: "test-group", WorkerID: "w1", Tasks: 1})
			if err != nil || len(resp.Tasks) != 1 {
				b.Fatal("claimWork", err)
			}
			claim := resp.Tasks[0]
			c := *env.client
			c.Credentials = taskcluster.StaticCredentials(claim.Credentials)
			sink := &queueSink{queue: c.Queue(), taskID: id, runID: claim.RunID, storageType: taskcluster.StorageS3,
				tmpDir: b.TempDir(), deadline: claim.Task.Deadline}
			path := filepath.Join(b.TempDir(), "live_backing.log")
			content := strings.Repeat("[workergen 2026-12-06T04:35:21.870Z] task log line\n", 8)
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				a := task.Artifact{Name: "public/logs/live_backing-" + strconv.Itoa(i) + ".log", Kind: task.ArtifactFile,
					Expires: claim.Task.Expires, ContentType: tasklog.ContentType, ContentEncoding: task.EncodingGzip,
					Size: int64(len(content)), Path: path, Open: func() (io.ReadCloser, error) { return os.Open(path) }}
				if mode == "prepared" {
					b.StopTimer()
					sink.PrepareArtifact(a)
					<-sink.prepared[a.Name].done
					b.StartTimer()
				}
				if err := sink.Publish(context.Background(), a); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestJournalKeepsLogObject: the task log's early object artifact reaches
// the run's journal record on disk: a second write after logObjectDelay
// when the record was written already; s3 answers and other artifacts
// are not kept.
func TestJournalKeepsLogObject(t *testing.T) {
	j, err := journal.Open(filepath.Join(t.TempDir(), ".journal"))
	require.NoError(t, err)
	ar := newActiveRun(taskcluster.TaskClaim{Status: taskcluster.TaskStatus{TaskID: NewSlugID()}, TakenUntil: time.Now().Add(time.Hour),
		Credentials: taskcluster.Credentials{ClientID: "task-client", AccessToken: "secret"}}, &taskcluster.ClockSkew{})
	rr := recordRun(j, ar, t.TempDir(), "", time.Hour, slog.Default())
	defer rr.drop()
	rr.update(func(*journal.Record) {}) // the first write (the engine's handles)
	rr.noteCreated("public/other.log", &taskcluster.PostArtifactResponse{StorageType: taskcluster.StorageObject, UploadID: "other"})
	rr.noteCreated(logName, &taskcluster.PostArtifactResponse{StorageType: taskcluster.StorageS3, PutURL: "http://example.com/put"})
	rr.mu.Lock()
	assert.Nil(t, rr.rec.LogObject)
	rr.mu.Unlock()
	up := &taskcluster.PostArtifactResponse{StorageType: taskcluster.StorageObject, Name: "t/x/0/" + logName, ProjectID: "none",
		UploadID: "upload-1", Expires: time.Now().Add(time.Hour).Truncate(time.Millisecond).UTC(),
		Credentials: taskcluster.Credentials{ClientID: "artifact-upload/x", AccessToken: "token"}}
	rr.noteCreated(logName, up)
	var got *journal.ObjectUpload
	for deadline := time.Now().Add(10 * logObjectDelay); time.Now().Before(deadline) && got == nil; time.Sleep(10 * time.Millisecond) {
		recs, _, err := j.List()
		require.NoError(t, err)
		require.Len(t, recs, 1)
		got = recs[0].LogObject
	}
	require.NotNil(t, got, "the record on disk holds the log's object upload")
	assert.Equal(t, journal.ObjectUpload{Name: up.Name, ProjectID: "none", UploadID: "upload-1", Expires: up.Expires, Credentials: up.Credentials}, *got)
}

// TestShutdownDeadlineUploadsTaskLog: a task still running at the
// shutdown deadline (SIGTERM, then shutdownGracePeriod) is killed and its
// run resolved exception/worker-shutdown, and the log's artifact, created
// when the run started, gets the log as written so far (s3 and object):
// the cut stops uploads in progress, but the task log is not left without
// content.
func TestShutdownDeadlineUploadsTaskLog(t *testing.T) {
	for _, storage := range []string{taskcluster.StorageS3, taskcluster.StorageObject} {
		t.Run(storage, func(t *testing.T) {
			env := newQueueEnv(t, time.Hour)
			w, eng := env.worker(1, 0)
			withTaskLog(t, w, storage)
			w.Config.ShutdownGracePeriod = 0 // the deadline is the signal
			id := env.createTask(`{"output": "working on it\n", "block": true}`, 1)
			go func() {
				<-eng.started
				for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
					if _, ok := logArtifact(t, env, id); ok {
						break
					}
				}
				w.Shutdown("SIGTERM received", true)
			}()
			require.NoError(t, w.Work(context.Background()))

			assert.Equal(t, "exception/worker-shutdown", runState(env.status(id), 0))
			a, ok := logArtifact(t, env, id)
			require.True(t, ok)
			require.True(t, a.Uploaded, "the log's artifact has content")
			assert.Contains(t, decoded(t, a), "] task name: t\nworking on it\n")
		})
	}
}
