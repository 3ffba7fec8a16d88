package taskcluster

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"time"
)

// WorkerManager is the Worker-manager service client
// (references/worker-manager/v1/api.json).
type WorkerManager struct{ c *Client }

// WorkerManager returns the Worker-manager client using c.
func (c *Client) WorkerManager() *WorkerManager { return &WorkerManager{c: c} }

// Client returns the underlying client.
func (w *WorkerManager) Client() *Client { return w.c }

// RegisterWorkerRequest is register-worker-request.json.
// WorkerIdentityProof depends on the provider, e.g. {"staticSecret": ...}
// or {"token": ...}.
type RegisterWorkerRequest struct {
	WorkerPoolID        string          `json:"workerPoolId"`
	ProviderID          string          `json:"providerId"`
	WorkerGroup         string          `json:"workerGroup"`
	WorkerID            string          `json:"workerId"`
	WorkerIdentityProof json.RawMessage `json:"workerIdentityProof"`
	SystemBootTime      time.Time       `json:"systemBootTime,omitzero"`
}

// MarshalJSON writes systemBootTime with millisecond precision
// (FormatTime).
func (r RegisterWorkerRequest) MarshalJSON() ([]byte, error) {
	type plain RegisterWorkerRequest
	return json.Marshal(struct {
		plain
		SystemBootTime string `json:"systemBootTime,omitempty"`
	}{plain(r), formatOptTime(r.SystemBootTime)})
}

// RegisterWorkerResponse is register-worker-response.json: the worker's
// credentials until Expires, its config, and the secret for
// reregisterWorker.
type RegisterWorkerResponse struct {
	Expires      time.Time       `json:"expires"`
	Credentials  Credentials     `json:"credentials"`
	WorkerConfig json.RawMessage `json:"workerConfig"`
	Secret       string          `json:"secret"`
}

// ReregisterWorkerRequest is reregister-worker-request.json.
type ReregisterWorkerRequest struct {
	WorkerPoolID string `json:"workerPoolId"`
	WorkerGroup  string `json:"workerGroup"`
	WorkerID     string `json:"workerId"`
	Secret       string `json:"secret"`
}

// ReregisterWorkerResponse is reregister-worker-response.json.
type ReregisterWorkerResponse struct {
	Expires     time.Time   `json:"expires"`
	Credentials Credentials `json:"credentials"`
	Secret      string      `json:"secret"`
}

// ShouldWorkerTerminateResponse is should-worker-terminate-response.json.
type ShouldWorkerTerminateResponse struct {
	Terminate bool   `json:"terminate"`
	Reason    string `json:"reason"`
}

// ReportWorkerErrorRequest is report-worker-error-request.json; Extra must
// be a JSON object (use "{}" when there is nothing to add).
type ReportWorkerErrorRequest struct {
	WorkerGroup string          `json:"workerGroup"`
	WorkerID    string          `json:"workerId"`
	Kind        string          `json:"kind"`
	Title       string          `json:"title"`
	Description string          `json:"description"`
	Extra       json.RawMessage `json:"extra"`
}

// WorkerPoolError is a recorded worker-pool error (worker-pool-error.json).
type WorkerPoolError struct {
	ErrorID      string          `json:"errorId"`
	WorkerPoolID string          `json:"workerPoolId"`
	Reported     time.Time       `json:"reported"`
	Kind         string          `json:"kind"`
	Title        string          `json:"title"`
	Description  string          `json:"description"`
	Extra        json.RawMessage `json:"extra"`
	WorkerGroup  string          `json:"workerGroup,omitempty"`
	WorkerID     string          `json:"workerId,omitempty"`
}

// WorkerPoolErrorList is worker-pool-error-list.json, one page of errors;
// ContinuationToken is "" on the last page.
type WorkerPoolErrorList struct {
	WorkerPoolErrors  []WorkerPoolError `json:"workerPoolErrors"`
	ContinuationToken string            `json:"continuationToken,omitempty"`
}

// RegisterWorker exchanges a provider's identity proof for credentials
// (worker-manager.registerWorker; needs no credentials).
func (w *WorkerManager) RegisterWorker(ctx context.Context, req *RegisterWorkerRequest) (*RegisterWorkerResponse, error) {
	var out RegisterWorkerResponse
	return &out, w.c.Call(ctx, "worker-manager", "worker-manager.registerWorker", http.MethodPost, "/worker/register", nil, req, &out)
}

// ReregisterWorker renews the worker's credentials
// (worker-manager.reregisterWorker).
func (w *WorkerManager) ReregisterWorker(ctx context.Context, req *ReregisterWorkerRequest) (*ReregisterWorkerResponse, error) {
	var out ReregisterWorkerResponse
	return &out, w.c.Call(ctx, "worker-manager", "worker-manager.reregisterWorker", http.MethodPost, "/worker/reregister", nil, req, &out)
}

// ShouldWorkerTerminate asks whether the worker should stop
// (worker-manager.shouldWorkerTerminate).
func (w *WorkerManager) ShouldWorkerTerminate(ctx context.Context, workerPoolID, workerGroup, workerID string) (*ShouldWorkerTerminateResponse, error) {
	var out ShouldWorkerTerminateResponse
	path := Route("/workers/<workerPoolId>/<workerGroup>/<workerId>/should-terminate", workerPoolID, workerGroup, workerID)
	return &out, w.c.Call(ctx, "worker-manager", "worker-manager.shouldWorkerTerminate", http.MethodGet, path, nil, nil, &out)
}

// ReportWorkerError records an error against the worker pool
// (worker-manager.reportWorkerError).
func (w *WorkerManager) ReportWorkerError(ctx context.Context, workerPoolID string, req *ReportWorkerErrorRequest) (*WorkerPoolError, error) {
	var out WorkerPoolError
	return &out, w.c.Call(ctx, "worker-manager", "worker-manager.reportWorkerError", http.MethodPost, Route("/worker-pool-errors/<workerPoolId>", workerPoolID), nil, req, &out)
}

// RemoveWorker tells worker-manager the worker is gone
// (worker-manager.removeWorker), as worker-runner does on the worker's
// `shutdown` message.
func (w *WorkerManager) RemoveWorker(ctx context.Context, workerPoolID, workerGroup, workerID string) error {
	path := Route("/workers/<workerPoolId>/<workerGroup>/<workerId>", workerPoolID, workerGroup, workerID)
	return w.c.Call(ctx, "worker-manager", "worker-manager.removeWorker", http.MethodDelete, path, nil, nil, nil)
}

// ListWorkerPoolErrors returns one page of the errors reported for a pool
// (worker-manager.listWorkerPoolErrors); query may set continuationToken,
// limit and errorId.
func (w *WorkerManager) ListWorkerPoolErrors(ctx context.Context, workerPoolID string, query url.Values) (*WorkerPoolErrorList, error) {
	var out WorkerPoolErrorList
	return &out, w.c.Call(ctx, "worker-manager", "worker-manager.listWorkerPoolErrors", http.MethodGet, Route("/worker-pool-errors/<workerPoolId>", workerPoolID), query, nil, &out)
}
