package taskcluster

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/workergen/workergen/taskcluster/hawk"
	"github.com/workergen/workergen/taskcluster/tcwire"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	taskID   = "fN1SbArXTPSVFNUvaOlinQ"
	uploadID = "KZUVbR5bQ2yL7w2H3p2c8A"
)

var workerCreds = Credentials{ClientID: "worker", AccessToken: "worker-token"}

// statusJSON is an upstream-shaped task status with one run.
func statusJSON(state, runState string) json.RawMessage {
	return json.RawMessage(`{
		"taskId": "` + taskID + `", "provisionerId": "proj", "workerType": "linux", "taskQueueId": "proj/linux",
		"schedulerId": "-", "projectId": "none", "taskGroupId": "` + taskID + `", "priority": "lowest",
		"deadline": "2030-01-01T00:00:00.000Z", "expires": "2031-01-01T00:00:00.000Z", "retriesLeft": 5,
		"state": "` + state + `",
		"runs": [{"runId": 0, "state": "` + runState + `", "reasonCreated": "scheduled",
			"workerGroup": "wg", "workerId": "w1", "takenUntil": "2030-01-01T00:20:00.000Z",
			"scheduled": "2029-12-31T23:00:00.000Z", "started": "2029-12-31T23:01:00.000Z"}]
	}`)
}

const taskJSON = `{
	"provisionerId": "proj", "workerType": "linux", "taskQueueId": "proj/linux", "schedulerId": "-",
	"projectId": "none", "taskGroupId": "` + taskID + `", "dependencies": [], "requires": "all-completed",
	"routes": [], "priority": "lowest", "retries": 5, "created": "2029-12-31T23:00:00.000Z",
	"deadline": "2030-01-01T00:00:00.000Z", "expires": "2031-01-01T00:00:00.000Z", "scopes": [],
	"payload": {"command": [["/bin/true"]], "maxRunTime": 60},
	"metadata": {"name": "t", "description": "d", "owner": "me@example.com", "source": "https://example.com/x"},
	"tags": {}, "extra": {}
}`

func tempCreds(t *testing.T, name string) Credentials {
	t.Helper()
	now := time.Now()
	c, err := hawk.CreateTemporaryCredentials(workerCreds, name, []string{"queue:*"}, now.Add(-time.Minute), now.Add(time.Hour))
	require.NoError(t, err)
	return c
}

func TestRoute(t *testing.T) {
	assert.Equal(t, "/task/abc/runs/0/artifacts/public%2Fa%20b+c%3Fd%23e.txt",
		Route("/task/<taskId>/runs/<runId>/artifacts/<name>", "abc", "0", "public/a b+c?d#e.txt"))
	assert.Equal(t, "/claim-work/proj%2Flinux", Route("/claim-work/<taskQueueId>", "proj/linux"))
	assert.Panics(t, func() { Route("/a/<x>", "1", "2") })
	assert.Panics(t, func() { Route("/a/<x>/<y>", "1") })

	c := &Client{RootURL: "https://tc.example.com/"}
	u, err := c.ServiceURL("queue", Route("/task/<taskId>/runs/<runId>/artifacts/<name>", "abc", "0", "public/a b+c"))
	require.NoError(t, err)
	assert.Equal(t, "https://tc.example.com/api/queue/v1/task/abc/runs/0/artifacts/public%2Fa%20b+c", u.String())
	assert.Equal(t, "/api/queue/v1/task/abc/runs/0/artifacts/public%2Fa%20b+c", u.RequestURI())
	_, err = (&Client{}).ServiceURL("queue", "/x")
	assert.ErrorIs(t, err, ErrNoRootURL)
}

// TestEndpoints calls every endpoint once against the fake server, which
// checks routes and methods against the upstream references, Hawk
// signatures, request bodies against input schemas and its own answers
// against output schemas.
func TestEndpoints(t *testing.T) {
	f := newFakeTC(t)
	creds := tempCreds(t, "")
	c := f.client(&creds)
	ctx := context.Background()
	q, o, wm := c.Queue(), c.Object(), c.WorkerManager()
	status := func(state, run string) reply {
		return reply{Body: map[string]any{"status": statusJSON(state, run)}}
	}
	taskCreds := tempCreds(t, "task-client/"+taskID)

	f.on("queue.task", func(args map[string]string, _ []byte, _ *hawk.Identity) reply {
		assert.Equal(t, taskID, args["taskId"])
		return reply{Raw: []byte(taskJSON)}
	})
	task, err := q.Task(ctx, taskID)
	require.NoError(t, err)
	assert.Equal(t, "proj/linux", task.TaskQueueID)
	assert.JSONEq(t, `{"command": [["/bin/true"]], "maxRunTime": 60}`, string(task.Payload))
	assert.Equal(t, time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), task.Deadline.UTC())

	f.on("queue.status", func(map[string]string, []byte, *hawk.Identity) reply { return status("running", "running") })
	st, err := q.Status(ctx, taskID)
	require.NoError(t, err)
	assert.Equal(t, tcwire.StateRunning, st.Status.State)
	require.Len(t, st.Status.Runs, 1)
	assert.Equal(t, "w1", st.Status.Runs[0].WorkerID)

	f.on("queue.createTask", func(args map[string]string, body []byte, _ *hawk.Identity) reply {
		assert.Equal(t, taskID, args["taskId"])
		return status("pending", "pending")
	})
	retries := 0
	_, err = q.CreateTask(ctx, taskID, &tcwire.TaskDefinition{
		TaskQueueID: "proj/linux",
		Created:     time.Now(),
		Deadline:    time.Now().Add(time.Hour),
		Retries:     &retries,
		Payload:     json.RawMessage(`{"command": [["true"]]}`),
		Metadata:    tcwire.TaskMetadata{Name: "n", Description: "d", Owner: "o@example.com", Source: "https://example.com"},
	})
	require.NoError(t, err)

	f.on("queue.claimWork", func(args map[string]string, body []byte, _ *hawk.Identity) reply {
		assert.Equal(t, "proj/linux", args["taskQueueId"])
		assert.JSONEq(t, `{"workerGroup":"wg","workerId":"w1","tasks":2}`, string(body))
		claim := map[string]any{
			"status": statusJSON("running", "running"), "runId": 0, "workerGroup": "wg", "workerId": "w1",
			"takenUntil": "2030-01-01T00:20:00.000Z", "task": json.RawMessage(taskJSON),
			"credentials": map[string]string{"clientId": taskCreds.ClientID, "accessToken": taskCreds.AccessToken, "certificate": taskCreds.Certificate},
		}
		return reply{Body: map[string]any{"tasks": []any{claim}}}
	})
	claimed, err := q.ClaimWork(ctx, "proj/linux", &ClaimWorkRequest{WorkerGroup: "wg", WorkerID: "w1", Tasks: 2})
	require.NoError(t, err)
	require.Len(t, claimed.Tasks, 1)
	assert.Equal(t, taskCreds.ClientID, claimed.Tasks[0].Credentials.ClientID)
	assert.Equal(t, taskCreds.Certificate, claimed.Tasks[0].Credentials.Certificate)
	assert.Equal(t, 0, claimed.Tasks[0].RunID)
	assert.Equal(t, time.Date(2030, 1, 1, 0, 20, 0, 0, time.UTC), claimed.Tasks[0].TakenUntil.UTC())

	// The task credentials from the claim sign the following calls.
	tc := f.client(&claimed.Tasks[0].Credentials)
	tq := tc.Queue()
	f.on("queue.reclaimTask", func(args map[string]string, _ []byte, id *hawk.Identity) reply {
		assert.Equal(t, map[string]string{"taskId": taskID, "runId": "0"}, args)
		assert.Equal(t, "task-client/"+taskID, id.ClientID)
		return reply{Body: map[string]any{
			"status": statusJSON("running", "running"), "runId": 0, "workerGroup": "wg", "workerId": "w1",
			"takenUntil":  "2030-01-01T00:40:00.000Z",
			"credentials": map[string]string{"clientId": "c2", "accessToken": "a2", "certificate": "{}"},
		}}
	})
	rec, err := tq.ReclaimTask(ctx, taskID, 0)
	require.NoError(t, err)
	assert.Equal(t, "c2", rec.Credentials.ClientID)
	assert.Equal(t, time.Date(2030, 1, 1, 0, 40, 0, 0, time.UTC), rec.TakenUntil.UTC())

	for _, ep := range []struct {
		name string
		call func() (*TaskStatusResponse, error)
		st   string
	}{
		{"queue.reportCompleted", func() (*TaskStatusResponse, error) { return tq.ReportCompleted(ctx, taskID, 0) }, "completed"},
		{"queue.reportFailed", func() (*TaskStatusResponse, error) { return tq.ReportFailed(ctx, taskID, 0) }, "failed"},
		{"queue.reportException", func() (*TaskStatusResponse, error) {
			return tq.ReportException(ctx, taskID, 0, tcwire.ReasonWorkerShutdown)
		}, "exception"},
	} {
		f.on(ep.name, func(args map[string]string, body []byte, _ *hawk.Identity) reply {
			if ep.name == "queue.reportException" {
				assert.JSONEq(t, `{"reason":"worker-shutdown"}`, string(body))
			}
			return status(ep.st, ep.st)
		})
		got, err := ep.call()
		require.NoError(t, err, ep.name)
		assert.Equal(t, ep.st, got.Status.State)
	}

	expires := time.Now().Add(24 * time.Hour).UTC().Truncate(time.Millisecond)
	for _, a := range []struct {
		req  *PostArtifactRequest
		resp any
	}{
		{S3Artifact("text/plain", 0, expires), map[string]any{"storageType": "s3", "putUrl": "https://s3.example.com/x?sig=1", "expires": expires, "contentType": "text/plain"}},
		{S3Artifact("text/plain", -1, expires), map[string]any{"storageType": "s3", "putUrl": "https://s3.example.com/x?sig=1", "expires": expires, "contentType": "text/plain"}},
		{ObjectArtifact("application/octet-stream", 12, expires), map[string]any{
			"storageType": "object", "name": "t/" + taskID + "/0/public/a b+c", "projectId": "none", "uploadId": uploadID, "expires": expires,
			"credentials": map[string]string{"clientId": "obj", "accessToken": "objtoken", "certificate": "{}"},
		}},
		{ReferenceArtifact("https://example.com/live.log", "text/plain", expires), map[string]any{"storageType": "reference"}},
		{LinkArtifact("public/logs/live_backing.log", "text/plain", expires), map[string]any{"storageType": "link"}},
		{LinkArtifact("public/logs/live_backing.log", "", expires), map[string]any{"storageType": "link"}},
		{ErrorArtifact(ErrorFileMissingOnWorker, "", expires), map[string]any{"storageType": "error"}},
	} {
		f.on("queue.createArtifact", func(args map[string]string, body []byte, _ *hawk.Identity) reply {
			assert.Equal(t, "public/a b+c", args["name"])
			return reply{Body: a.resp}
		})
		got, err := tq.CreateArtifact(ctx, taskID, 0, "public/a b+c", a.req)
		require.NoError(t, err, a.req.StorageType)
		assert.Equal(t, a.req.StorageType, got.StorageType)
		if a.req.StorageType == StorageObject {
			assert.Equal(t, "objtoken", got.Credentials.AccessToken)
			assert.Equal(t, uploadID, got.UploadID)
		}
	}
	_, err = tq.CreateArtifact(ctx, taskID, 0, "x", &PostArtifactRequest{StorageType: "azure"})
	assert.Error(t, err)

	f.on("queue.finishArtifact", func(args map[string]string, body []byte, _ *hawk.Identity) reply {
		assert.Equal(t, "public/a b+c", args["name"])
		return reply{Status: 204}
	})
	require.NoError(t, tq.FinishArtifact(ctx, taskID, 0, "public/a b+c", uploadID))

	f.on("queue.listArtifacts", func(args map[string]string, _ []byte, _ *hawk.Identity) reply {
		return reply{Body: map[string]any{"artifacts": []any{
			map[string]any{"storageType": "s3", "name": "public/a", "expires": expires, "contentType": "text/plain", "contentLength": 0},
			map[string]any{"storageType": "error", "name": "public/b", "expires": expires, "contentType": "application/json"},
		}, "continuationToken": "next"}}
	})
	list, err := q.ListArtifacts(ctx, taskID, 0, "tok", 10)
	require.NoError(t, err)
	require.Len(t, list.Artifacts, 2)
	assert.Equal(t, "next", list.ContinuationToken)
	require.NotNil(t, list.Artifacts[0].ContentLength)
	assert.Equal(t, int64(0), *list.Artifacts[0].ContentLength)
	assert.Nil(t, list.Artifacts[1].ContentLength)
	last := f.recorded()[len(f.recorded())-1]
	assert.Equal(t, "queue.listArtifacts", last.Endpoint)

	// Object service.
	f.on("object.createUpload", func(args map[string]string, _ []byte, _ *hawk.Identity) reply {
		assert.Equal(t, "t/x/0/public/a b+c", args["name"])
		return reply{Body: map[string]any{"projectId": "none", "uploadId": uploadID, "expires": expires,
			"uploadMethod": map[string]any{"putUrl": map[string]any{"url": "https://s3.example.com/o?sig=2", "expires": expires, "headers": map[string]string{"Content-Type": "text/plain"}}}}}
	})
	cu, err := o.CreateUpload(ctx, "t/x/0/public/a b+c", &CreateUploadRequest{ProjectID: "none", UploadID: uploadID, Expires: expires,
		ProposedUploadMethods: ProposedUploadMethods{PutURL: &PutURLUploadRequest{ContentType: "text/plain", ContentLength: 3}}})
	require.NoError(t, err)
	require.NotNil(t, cu.UploadMethod.PutURL)
	assert.Equal(t, "text/plain", cu.UploadMethod.PutURL.Headers["Content-Type"])

	f.on("object.finishUpload", func(map[string]string, []byte, *hawk.Identity) reply { return reply{Status: 204} })
	require.NoError(t, o.FinishUpload(ctx, "t/x/0/public/a b+c", &FinishUploadRequest{ProjectID: "none", UploadID: uploadID,
		Hashes: ObjectHashes{"sha256": strings.Repeat("a", 64)}}))

	f.on("object.startDownload", func(map[string]string, []byte, *hawk.Identity) reply {
		return reply{Body: map[string]any{"method": "getUrl", "url": "https://s3.example.com/o", "expires": expires, "hashes": map[string]string{"sha256": strings.Repeat("b", 64)}}}
	})
	dl, err := o.StartDownload(ctx, "t/x/0/public/a b+c", &DownloadObjectRequest{AcceptDownloadMethods: AcceptDownloadMethods{GetURL: true}})
	require.NoError(t, err)
	assert.Equal(t, "getUrl", dl.Method)
	assert.Len(t, dl.Hashes["sha256"], 64)

	// Worker-manager.
	f.on("worker-manager.registerWorker", func(map[string]string, []byte, *hawk.Identity) reply {
		return reply{Body: map[string]any{"expires": expires, "credentials": map[string]string{"clientId": "w", "accessToken": "t"},
			"workerConfig": map[string]any{"capacity": 2}, "secret": strings.Repeat("s", 44)}}
	})
	anon := f.client(nil)
	reg, err := anon.WorkerManager().RegisterWorker(ctx, &RegisterWorkerRequest{WorkerPoolID: "proj/linux", ProviderID: "static", WorkerGroup: "wg", WorkerID: "w1",
		WorkerIdentityProof: json.RawMessage(`{"staticSecret":"` + strings.Repeat("x", 44) + `"}`), SystemBootTime: time.Now()})
	require.NoError(t, err)
	assert.Equal(t, "w", reg.Credentials.ClientID)
	assert.JSONEq(t, `{"capacity":2}`, string(reg.WorkerConfig))

	f.on("worker-manager.reregisterWorker", func(map[string]string, []byte, *hawk.Identity) reply {
		return reply{Body: map[string]any{"expires": expires, "credentials": map[string]string{"clientId": "w", "accessToken": "t2", "certificate": "{}"}, "secret": strings.Repeat("r", 44)}}
	})
	rr, err := wm.ReregisterWorker(ctx, &ReregisterWorkerRequest{WorkerPoolID: "proj/linux", WorkerGroup: "wg", WorkerID: "w1", Secret: reg.Secret})
	require.NoError(t, err)
	assert.Equal(t, "t2", rr.Credentials.AccessToken)

	f.on("worker-manager.shouldWorkerTerminate", func(args map[string]string, _ []byte, _ *hawk.Identity) reply {
		assert.Equal(t, map[string]string{"workerPoolId": "proj/linux", "workerGroup": "wg", "workerId": "w1"}, args)
		return reply{Body: map[string]any{"terminate": true, "reason": "pool removed"}}
	})
	term, err := wm.ShouldWorkerTerminate(ctx, "proj/linux", "wg", "w1")
	require.NoError(t, err)
	assert.True(t, term.Terminate)

	f.on("worker-manager.reportWorkerError", func(args map[string]string, _ []byte, _ *hawk.Identity) reply {
		assert.Equal(t, "proj/linux", args["workerPoolId"])
		return reply{Body: map[string]any{"errorId": "e1", "workerPoolId": "proj/linux", "reported": expires, "kind": "worker-error", "title": "t", "description": "d", "extra": map[string]any{}}}
	})
	pe, err := wm.ReportWorkerError(ctx, "proj/linux", &ReportWorkerErrorRequest{WorkerGroup: "wg", WorkerID: "w1", Kind: "worker-error", Title: "t", Description: "d", Extra: json.RawMessage(`{}`)})
	require.NoError(t, err)
	assert.Equal(t, "e1", pe.ErrorID)

	// Every signed call was authenticated as the expected client.
	for _, r := range f.recorded() {
		if r.Endpoint == "worker-manager.registerWorker" {
			assert.Nil(t, r.Identity)
			continue
		}
		require.NotNil(t, r.Identity, r.Endpoint)
	}
}

func TestGetArtifact(t *testing.T) {
	f := newFakeTC(t)
	q := f.client(&workerCreds).Queue()
	ctx := context.Background()

	f.on("queue.getArtifact", func(args map[string]string, _ []byte, _ *hawk.Identity) reply {
		switch args["name"] {
		case "public/json redirect+1":
			return reply{Status: 303, Body: map[string]any{"storageType": "s3", "url": "https://s3.example.com/a"},
				Headers: map[string]string{"Location": "https://s3.example.com/a"}}
		case "public/location":
			return reply{Status: 303, Raw: []byte("see other"), NoValidate: true, Headers: map[string]string{"Location": "https://s3.example.com/b"}}
		case "public/error":
			return reply{Status: 424, Body: map[string]any{"reason": "file-missing-on-worker", "message": "no such file"}, NoValidate: true}
		}
		return reply{Status: 404, Body: map[string]any{"code": "ResourceNotFound", "message": "no artifact"}, NoValidate: true}
	})
	got, err := q.GetArtifact(ctx, taskID, 0, "public/json redirect+1")
	require.NoError(t, err)
	assert.Equal(t, &GetArtifactResponse{StorageType: "s3", URL: "https://s3.example.com/a"}, got)

	got, err = q.GetArtifact(ctx, taskID, 0, "public/location")
	require.NoError(t, err)
	assert.Equal(t, "https://s3.example.com/b", got.URL)

	_, err = q.GetArtifact(ctx, taskID, 0, "public/error")
	var apiErr *APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, 424, apiErr.StatusCode)
	assert.Contains(t, apiErr.Message, "no such file")

	_, err = q.GetArtifact(ctx, taskID, 0, "public/none")
	assert.ErrorIs(t, err, ErrNotFound)
	assert.Equal(t, 1, f.count("queue.getArtifact")-3, "404 is not retried")

	// A signed URL is accepted by the server without a header.
	u, err := q.ArtifactURL(taskID, 0, "private/a b+c", 10*time.Minute)
	require.NoError(t, err)
	assert.Contains(t, u.RawQuery, "bewit=")
	assert.Contains(t, u.String(), "private%2Fa%20b+c")
	hc := f.srv.Client()
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := hc.Get(u.String())
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 404, resp.StatusCode)
	calls := f.recorded()
	lastCall := calls[len(calls)-1]
	assert.Equal(t, "private/a b+c", lastCall.Args["name"])
	require.NotNil(t, lastCall.Identity)
	assert.Equal(t, "worker", lastCall.Identity.ClientID)
}

func TestAPIErrorNotRetried(t *testing.T) {
	f := newFakeTC(t)
	q := f.client(&workerCreds).Queue()
	f.on("queue.reclaimTask", func(map[string]string, []byte, *hawk.Identity) reply {
		return reply{Status: 409, Body: map[string]any{"code": "RequestConflict", "message": "run 0 was cancelled"}, NoValidate: true}
	})
	_, err := q.ReclaimTask(context.Background(), taskID, 0)
	require.ErrorIs(t, err, ErrConflict)
	assert.NotErrorIs(t, err, ErrNotFound)
	var apiErr *APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, 409, apiErr.StatusCode)
	assert.Equal(t, "RequestConflict", apiErr.Code)
	assert.Equal(t, "run 0 was cancelled", apiErr.Message)
	assert.Equal(t, "req-reclaimTask", apiErr.RequestID)
	assert.Equal(t, "POST", apiErr.Method)
	assert.Contains(t, apiErr.URL, "/api/queue/v1/task/"+taskID+"/runs/0/reclaim")
	assert.Contains(t, err.Error(), "409")
	assert.Equal(t, 409, StatusCode(err))
	assert.Equal(t, 1, f.count("queue.reclaimTask"))

	// A non-JSON error body is kept as the message.
	f.on("queue.status", func(map[string]string, []byte, *hawk.Identity) reply {
		return reply{Status: 400, Raw: []byte("bad things"), NoValidate: true}
	})
	_, err = q.Status(context.Background(), taskID)
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, "bad things", apiErr.Message)
	assert.Equal(t, 1, f.count("queue.status"))

	// An HTML page (a web server at a wrong rootUrl) is one line, cut short.
	page := "<!DOCTYPE HTML>\n<html>\n  <head><title>Error response</title></head>\n  <body>\n" +
		strings.Repeat("    <p>Error code: 404</p>\n", 40) + "  </body>\n</html>\n"
	f.on("queue.task", func(map[string]string, []byte, *hawk.Identity) reply {
		return reply{Status: 404, Raw: []byte(page), NoValidate: true}
	})
	_, err = q.Task(context.Background(), taskID)
	require.ErrorAs(t, err, &apiErr)
	assert.NotContains(t, err.Error(), "\n")
	assert.True(t, strings.HasPrefix(apiErr.Message, "<!DOCTYPE HTML> <html> <head><title>Error response</title></head> <body> <p>Error code: 404</p>"), apiErr.Message)
	assert.LessOrEqual(t, len([]rune(apiErr.Message)), maxPlainErrorMessage+len("..."))
	assert.True(t, strings.HasSuffix(apiErr.Message, "..."), apiErr.Message)
}

// TestRetry5xx checks that 5xx answers are retried with a fresh signature
// per attempt, and that credentials swapped between attempts are used.
func TestRetry5xx(t *testing.T) {
	f := newFakeTC(t)
	holder := NewCredentialsHolder(workerCreds)
	c := f.client(nil)
	c.Credentials = holder.Get
	var n atomic.Int32
	f.on("queue.reportCompleted", func(map[string]string, []byte, *hawk.Identity) reply {
		switch n.Add(1) {
		case 1:
			return reply{Status: 500, Body: map[string]any{"code": "InternalServerError", "message": "boom"}}
		case 2:
			holder.Set(Credentials{ClientID: "worker-two", AccessToken: "worker-two-token"})
			return reply{Status: 503, Raw: []byte("unavailable")}
		}
		return reply{Body: map[string]any{"status": statusJSON("completed", "completed")}}
	})
	_, err := c.Queue().ReportCompleted(context.Background(), taskID, 0)
	require.NoError(t, err)
	calls := f.recorded()
	require.Len(t, calls, 3)
	assert.Equal(t, "worker", calls[0].Identity.ClientID)
	assert.Equal(t, "worker", calls[1].Identity.ClientID)
	assert.Equal(t, "worker-two", calls[2].Identity.ClientID)
	assert.NotEqual(t, calls[0].Identity.Header.Nonce, calls[1].Identity.Header.Nonce)
	trace := calls[0].Header.Get(HeaderTraceID)
	assert.Len(t, trace, 36)
	assert.Equal(t, trace, calls[2].Header.Get(HeaderTraceID), "one trace id per call")
}

func TestRetryNetworkError(t *testing.T) {
	f := newFakeTC(t)
	var n atomic.Int32
	// The first two attempts find the connection closed without an answer.
	f.onPath("/api/queue/v1/task/"+taskID+"/status", func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) <= 2 {
			conn, _, err := w.(http.Hijacker).Hijack()
			require.NoError(t, err)
			conn.Close()
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":` + string(statusJSON("pending", "pending")) + `}`))
	})
	st, err := f.client(&workerCreds).Queue().Status(context.Background(), taskID)
	require.NoError(t, err)
	assert.Equal(t, "pending", st.Status.State)
	assert.Equal(t, int32(3), n.Load())
}

func TestRetryBounds(t *testing.T) {
	f := newFakeTC(t)
	var n atomic.Int32
	f.on("queue.status", func(map[string]string, []byte, *hawk.Identity) reply {
		n.Add(1)
		return reply{Status: 502, Raw: []byte("bad gateway")}
	})

	t.Run("max elapsed time", func(t *testing.T) {
		c := f.client(&workerCreds)
		c.MaxElapsedTime = 50 * time.Millisecond
		_, err := c.Queue().Status(context.Background(), taskID)
		var apiErr *APIError
		require.ErrorAs(t, err, &apiErr)
		assert.Equal(t, 502, apiErr.StatusCode)
		assert.Greater(t, n.Load(), int32(1))
	})

	t.Run("context cancelled", func(t *testing.T) {
		n.Store(0)
		c := f.client(&workerCreds)
		c.MaxElapsedTime = -1 // only the context bounds retries
		ctx, cancel := context.WithCancel(context.Background())
		f.on("queue.status", func(map[string]string, []byte, *hawk.Identity) reply {
			if n.Add(1) == 3 {
				cancel()
			}
			return reply{Status: 500, Raw: []byte("down")}
		})
		_, err := c.Queue().Status(ctx, taskID)
		require.Error(t, err)
		assert.ErrorIs(t, err, context.Canceled)
		assert.Contains(t, err.Error(), "queue.status")
		assert.GreaterOrEqual(t, n.Load(), int32(3))
	})

	t.Run("context already done", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := f.client(&workerCreds).Queue().Status(ctx, taskID)
		assert.ErrorIs(t, err, context.Canceled)
	})
}

func TestAuthorizedScopes(t *testing.T) {
	f := newFakeTC(t)
	c := f.client(&workerCreds)
	c.AuthorizedScopes = []string{"queue:status:x"}
	f.on("queue.status", func(map[string]string, []byte, *hawk.Identity) reply {
		return reply{Body: map[string]any{"status": statusJSON("pending", "pending")}}
	})
	_, err := c.Queue().Status(context.Background(), taskID)
	require.NoError(t, err)
	assert.Equal(t, []string{"queue:status:x"}, f.recorded()[0].Identity.Scopes)
}

func TestUnauthenticatedAndBadCredentials(t *testing.T) {
	f := newFakeTC(t)
	f.on("queue.task", func(map[string]string, []byte, *hawk.Identity) reply { return reply{Raw: []byte(taskJSON)} })
	_, err := f.client(nil).Queue().Task(context.Background(), taskID)
	require.NoError(t, err)
	assert.Empty(t, f.recorded()[0].Header.Get("Authorization"))

	c := f.client(&Credentials{ClientID: "worker", AccessToken: "worker-token", Certificate: "not json"})
	_, err = c.Queue().Task(context.Background(), taskID)
	assert.ErrorIs(t, err, hawk.ErrBadCertificate)
	assert.Len(t, f.recorded(), 1, "nothing sent")

	var e *APIError
	assert.False(t, errors.As(err, &e))
}

func TestDownloadArtifact(t *testing.T) {
	f := newFakeTC(t)
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		assert.Empty(t, r.Header.Get("Authorization"), "storage URLs are not Hawk-signed")
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("from storage"))
	}))
	defer other.Close()
	var local atomic.Int32
	f.onPath("/data/a b", func(w http.ResponseWriter, r *http.Request) {
		if local.Add(1) == 1 {
			w.WriteHeader(502)
			return
		}
		id, err := f.auth.Authenticate(r.Context(), r)
		if !assert.NoError(t, err) {
			w.WriteHeader(401)
			return
		}
		assert.Equal(t, "worker", id.ClientID)
		_, _ = w.Write([]byte("from local queue"))
	})
	f.on("queue.getArtifact", func(args map[string]string, _ []byte, _ *hawk.Identity) reply {
		target := other.URL + "/bucket/x?sig=1"
		if args["name"] == "public/local" {
			target = f.srv.URL + "/data/a%20b"
		}
		return reply{Status: 303, Body: map[string]any{"storageType": "s3", "url": target}, Headers: map[string]string{"Location": target}}
	})
	c := f.client(&workerCreds)
	c.HTTPClient = http.DefaultClient // reaches both servers
	defer c.CloseIdleConnections()
	for name, want := range map[string]string{"public/local": "from local queue", "public/remote": "from storage"} {
		resp, err := c.Queue().DownloadArtifact(context.Background(), taskID, 0, name)
		require.NoError(t, err, name)
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		assert.Equal(t, want, string(body))
	}
	assert.Equal(t, int32(2), local.Load(), "502 retried")
	http.DefaultClient.CloseIdleConnections()
}

func TestTimesHaveMillisecondPrecision(t *testing.T) {
	ts := time.Date(2030, 1, 2, 3, 4, 5, 678999999, time.FixedZone("x", 3600))
	assert.Equal(t, "2030-01-02T02:04:05.678Z", FormatTime(ts))
	for _, v := range []any{
		ErrorArtifact(ErrorFileMissingOnWorker, "m", ts),
		&CreateUploadRequest{Expires: ts},
		&tcwire.TaskDefinition{Created: ts, Deadline: ts, Expires: ts},
		&RegisterWorkerRequest{SystemBootTime: ts},
	} {
		b, err := json.Marshal(v)
		require.NoError(t, err)
		assert.Contains(t, string(b), `"2030-01-02T02:04:05.678Z"`)
		assert.NotContains(t, string(b), "678999999")
	}
	b, err := json.Marshal(&tcwire.TaskDefinition{Created: ts, Deadline: ts})
	require.NoError(t, err)
	assert.NotContains(t, string(b), "expires")
	b, err = json.Marshal(&RegisterWorkerRequest{})
	require.NoError(t, err)
	assert.NotContains(t, string(b), "systemBootTime")
}

// TestAttemptTimeout checks that a stalled attempt is abandoned and retried.
func TestAttemptTimeout(t *testing.T) {
	f := newFakeTC(t)
	release := make(chan struct{})
	defer close(release)
	var n atomic.Int32
	f.onPath("/api/queue/v1/task/"+taskID+"/status", func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			select { // stall until the client gives up on the attempt
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":` + string(statusJSON("pending", "pending")) + `}`))
	})
	c := f.client(&workerCreds)
	c.AttemptTimeout = 100 * time.Millisecond
	st, err := c.Queue().Status(context.Background(), taskID)
	require.NoError(t, err)
	assert.Equal(t, "pending", st.Status.State)
	assert.Equal(t, int32(2), n.Load())
}
