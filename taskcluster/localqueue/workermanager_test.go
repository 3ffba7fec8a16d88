package localqueue

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/taskcluster"
	"github.com/workergen/workergen/taskcluster/hawk"
)

const testPool = testQueue

// wmHarness is a harness with a static pool and one static worker.
func wmHarness(t *testing.T) (*harness, string) {
	h := newHarness(t)
	require.NoError(t, h.s.CreateWorkerPool(WorkerPool{WorkerPoolID: testPool, WorkerConfig: map[string]any{"capacity": 2}}))
	secret := hawk.NewSeed()
	require.NoError(t, h.s.CreateStaticWorker(testPool, testWorkerGroup, testWorkerID, secret))
	return h, secret
}

func registerRequest(secret string) *taskcluster.RegisterWorkerRequest {
	return &taskcluster.RegisterWorkerRequest{
		WorkerPoolID: testPool, ProviderID: "static", WorkerGroup: testWorkerGroup, WorkerID: testWorkerID,
		WorkerIdentityProof: json.RawMessage(`{"staticSecret":"` + secret + `"}`),
	}
}

// TestWorkerManagerLifecycle runs a static worker's whole conversation with
// worker-manager through the project's client: register, claim with the
// registered credentials, report an error, reregister, revoke the old
// credentials, ask whether to terminate, and remove the worker.
func TestWorkerManagerLifecycle(t *testing.T) {
	h, secret := wmHarness(t)
	ctx := context.Background()
	anon := h.tcClient(nil).WorkerManager()

	_, err := anon.RegisterWorker(ctx, registerRequest(hawk.NewSeed()))
	require.Error(t, err, "a wrong staticSecret")
	var apiErr *taskcluster.APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, 400, apiErr.StatusCode)

	reg, err := anon.RegisterWorker(ctx, registerRequest(secret))
	require.NoError(t, err)
	assert.Equal(t, "worker/static/"+testPool+"/"+testWorkerGroup+"/"+testWorkerID, reg.Credentials.ClientID)
	assert.NotEmpty(t, reg.Credentials.Certificate)
	assert.JSONEq(t, `{"capacity":2}`, string(reg.WorkerConfig))
	assert.Equal(t, h.clock.Now().Add(DefaultCredentialsLifetime).UTC(), reg.Expires.UTC())

	creds := taskcluster.NewCredentialsHolder(reg.Credentials)
	wm := h.tcClient(creds.Get).WorkerManager()
	queue := h.tcClient(creds.Get).Queue()
	_, err = queue.ClaimWork(ctx, testQueue, &taskcluster.ClaimWorkRequest{WorkerGroup: testWorkerGroup, WorkerID: testWorkerID, Tasks: 1})
	require.NoError(t, err, "registered credentials claim work")

	should, err := wm.ShouldWorkerTerminate(ctx, testPool, testWorkerGroup, testWorkerID)
	require.NoError(t, err)
	assert.Equal(t, taskcluster.ShouldWorkerTerminateResponse{Terminate: false, Reason: "worker is running"}, *should)
	require.NoError(t, h.s.SetShouldTerminate(testPool, testWorkerGroup, testWorkerID, true, "pool is shrinking"))
	should, err = wm.ShouldWorkerTerminate(ctx, testPool, testWorkerGroup, testWorkerID)
	require.NoError(t, err)
	assert.Equal(t, taskcluster.ShouldWorkerTerminateResponse{Terminate: true, Reason: "pool is shrinking"}, *should)

	reported, err := wm.ReportWorkerError(ctx, testPool, &taskcluster.ReportWorkerErrorRequest{
		WorkerGroup: testWorkerGroup, WorkerID: testWorkerID, Kind: "worker-error", Title: "bad config",
		Description: "no workerId", Extra: json.RawMessage(`{"exitCode":73}`),
	})
	require.NoError(t, err)
	assert.Equal(t, "bad config", reported.Title)
	assert.Equal(t, testPool, reported.WorkerPoolID)
	_, err = wm.ListWorkerPoolErrors(ctx, testPool, nil)
	assert.ErrorIs(t, err, taskcluster.ErrForbidden, "a worker cannot list its pool's errors")
	admin := h.tcClient(taskcluster.StaticCredentials(taskcluster.Credentials{ClientID: "admin", AccessToken: "admin-token"})).WorkerManager()
	list, err := admin.ListWorkerPoolErrors(ctx, testPool, nil)
	require.NoError(t, err)
	require.Len(t, list.WorkerPoolErrors, 1)
	assert.Equal(t, reported.ErrorID, list.WorkerPoolErrors[0].ErrorID)
	assert.JSONEq(t, `{"exitCode":73}`, string(list.WorkerPoolErrors[0].Extra))
	assert.Equal(t, []WorkerPoolError{{ErrorID: reported.ErrorID, WorkerPoolID: testPool, Reported: h.clock.Now().UTC().Truncate(time.Millisecond),
		Kind: "worker-error", Title: "bad config", Description: "no workerId", Extra: map[string]any{"exitCode": float64(73)},
		WorkerGroup: testWorkerGroup, WorkerID: testWorkerID}}, h.s.WorkerPoolErrors(testPool))

	old := reg.Credentials
	rereg, err := wm.ReregisterWorker(ctx, &taskcluster.ReregisterWorkerRequest{WorkerPoolID: testPool, WorkerGroup: testWorkerGroup, WorkerID: testWorkerID, Secret: reg.Secret})
	require.NoError(t, err)
	assert.NotEqual(t, reg.Secret, rereg.Secret)
	assert.NotEqual(t, old.AccessToken, rereg.Credentials.AccessToken)
	_, err = wm.ReregisterWorker(ctx, &taskcluster.ReregisterWorkerRequest{WorkerPoolID: testPool, WorkerGroup: testWorkerGroup, WorkerID: testWorkerID, Secret: reg.Secret})
	require.Error(t, err, "the old secret is spent")

	require.NoError(t, h.s.RevokeCredentials(old))
	_, err = wm.ShouldWorkerTerminate(ctx, testPool, testWorkerGroup, testWorkerID)
	assert.ErrorIs(t, err, taskcluster.ErrUnauthorized, "revoked credentials fail")
	creds.Set(rereg.Credentials)
	_, err = queue.ClaimWork(ctx, testQueue, &taskcluster.ClaimWorkRequest{WorkerGroup: testWorkerGroup, WorkerID: testWorkerID, Tasks: 1})
	require.NoError(t, err, "the new credentials work")
	assert.ErrorIs(t, h.s.RevokeCredentials(taskcluster.Credentials{ClientID: "worker", AccessToken: "worker-token"}), ErrNotFound)

	w, err := h.s.Worker(testPool, testWorkerGroup, testWorkerID)
	require.NoError(t, err)
	assert.Equal(t, WorkerRunning, w.State)
	require.Len(t, w.Credentials, 2)
	assert.True(t, w.Credentials[0].Revoked)
	assert.False(t, w.Credentials[1].Revoked)
	assert.False(t, w.Credentials[1].FirstUsed.IsZero(), "the new credentials' first use is recorded")

	require.NoError(t, wm.RemoveWorker(ctx, testPool, testWorkerGroup, testWorkerID))
	w, err = h.s.Worker(testPool, testWorkerGroup, testWorkerID)
	require.NoError(t, err)
	assert.Equal(t, WorkerStopped, w.State)
	_, err = anon.RegisterWorker(ctx, registerRequest(secret))
	require.Error(t, err, "a stopped worker cannot register")
}

func TestShouldWorkerTerminateDefaultsToTheWorkerState(t *testing.T) {
	h, _ := wmHarness(t)
	r := h.admin.call("GET", "worker-manager", "/workers/"+url.PathEscape(testPool)+"/"+testWorkerGroup+"/"+testWorkerID+"/should-terminate", nil,
		"", "worker-manager/v1/should-worker-terminate-response.json", 200)
	assert.JSONEq(t, `{"terminate":true,"reason":"worker is requested"}`, string(r.body))
	h.admin.call("GET", "worker-manager", "/workers/"+url.PathEscape(testPool)+"/g/nobody/should-terminate", nil, "", "", 404)
	h.worker.call("GET", "worker-manager", "/workers/"+url.PathEscape(testPool)+"/"+testWorkerGroup+"/"+testWorkerID+"/should-terminate", nil, "", "", 403)
}

func TestRegisterResponsesMatchSchemas(t *testing.T) {
	h, secret := wmHarness(t)
	req := registerRequest(secret)
	anon := h.client("", "", "")
	r := anon.call("POST", "worker-manager", "/worker/register", req, "worker-manager/v1/register-worker-request.json", "worker-manager/v1/register-worker-response.json", 200)
	var reg taskcluster.RegisterWorkerResponse
	r.decode(t, &reg)
	rr := taskcluster.ReregisterWorkerRequest{WorkerPoolID: testPool, WorkerGroup: testWorkerGroup, WorkerID: testWorkerID, Secret: reg.Secret}
	h.clientFor(reg.Credentials).call("POST", "worker-manager", "/worker/reregister", rr,
		"worker-manager/v1/reregister-worker-request.json", "worker-manager/v1/reregister-worker-response.json", 200)
	rr.WorkerID = "someone-else"
	h.clientFor(reg.Credentials).call("POST", "worker-manager", "/worker/reregister", rr, "", "", 403)

	other := *req
	other.ProviderID = "aws"
	anon.call("POST", "worker-manager", "/worker/register", other, "", "", 400)
	other = *req
	other.WorkerIdentityProof = json.RawMessage(`{"token":"x"}`)
	anon.call("POST", "worker-manager", "/worker/register", other, "", "", 400)
	other = *req
	other.WorkerID = "unknown"
	anon.call("POST", "worker-manager", "/worker/register", other, "", "", 404)
	h.admin.call("POST", "worker-manager", "/worker-pool-errors/"+url.PathEscape("no/pool"), map[string]any{
		"workerGroup": "g", "workerId": "w", "kind": "k", "title": "t", "description": "d", "extra": map[string]any{}}, "", "", 404)
	h.admin.call("POST", "worker-manager", "/worker-pool-errors/"+url.PathEscape(testPool), map[string]any{"workerGroup": "g"}, "", "", 400)
}

func TestListWorkerPoolErrorsPages(t *testing.T) {
	h, _ := wmHarness(t)
	ctx := context.Background()
	admin := h.tcClient(taskcluster.StaticCredentials(taskcluster.Credentials{ClientID: "admin", AccessToken: "admin-token"})).WorkerManager()
	var ids []string
	for i := range 3 {
		h.clock.Advance(time.Second)
		e, err := admin.ReportWorkerError(ctx, testPool, &taskcluster.ReportWorkerErrorRequest{WorkerGroup: "g", WorkerID: "w", Kind: "k",
			Title: "t", Description: string(rune('a' + i)), Extra: json.RawMessage(`{}`)})
		require.NoError(t, err)
		ids = append(ids, e.ErrorID)
	}
	page1, err := admin.ListWorkerPoolErrors(ctx, testPool, url.Values{"limit": {"2"}})
	require.NoError(t, err)
	require.Len(t, page1.WorkerPoolErrors, 2)
	page2, err := admin.ListWorkerPoolErrors(ctx, testPool, url.Values{"continuationToken": {page1.ContinuationToken}})
	require.NoError(t, err)
	require.Len(t, page2.WorkerPoolErrors, 1)
	assert.Equal(t, ids[2], page2.WorkerPoolErrors[0].ErrorID)
	assert.Empty(t, page2.ContinuationToken)
	one, err := admin.ListWorkerPoolErrors(ctx, testPool, url.Values{"errorId": {ids[1]}})
	require.NoError(t, err)
	require.Len(t, one.WorkerPoolErrors, 1)
	assert.Equal(t, "b", one.WorkerPoolErrors[0].Description)
}

func TestWorkerManagerSetupErrors(t *testing.T) {
	h := newHarness(t)
	assert.ErrorIs(t, h.s.CreateWorkerPool(WorkerPool{WorkerPoolID: "nopool"}), ErrInput)
	assert.ErrorIs(t, h.s.CreateStaticWorker(testPool, "g", "w", hawk.NewSeed()), ErrNotFound)
	require.NoError(t, h.s.CreateWorkerPool(WorkerPool{WorkerPoolID: testPool}))
	assert.ErrorIs(t, h.s.CreateStaticWorker(testPool, "g", "w", "short"), ErrInput)
	assert.ErrorIs(t, h.s.SetShouldTerminate(testPool, "g", "w", true, ""), ErrNotFound)
	_, err := h.s.Worker(testPool, "g", "w")
	assert.True(t, errors.Is(err, ErrNotFound))
}
