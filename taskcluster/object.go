package taskcluster

import (
	"context"
	"encoding/json"
	"net/http"
	"time"
)

// Object is the Object service client (references/object/v1/api.json).
type Object struct{ c *Client }

// Object returns the Object service client using c.
func (c *Client) Object() *Object { return &Object{c: c} }

// Client returns the underlying client.
func (o *Object) Client() *Client { return o.c }

// PutURLUploadRequest is upload-method-put-url.json#/definitions/request.
type PutURLUploadRequest struct {
	ContentType   string `json:"contentType"`
	ContentLength int64  `json:"contentLength"`
}

// DataInlineUploadRequest is upload-method-data-inline.json#/definitions/request:
// the object's data, base64, at most 10926 characters.
type DataInlineUploadRequest struct {
	ContentType string `json:"contentType"`
	ObjectData  string `json:"objectData"`
}

// ProposedUploadMethods lists the upload methods the caller supports.
type ProposedUploadMethods struct {
	PutURL     *PutURLUploadRequest     `json:"putUrl,omitempty"`
	DataInline *DataInlineUploadRequest `json:"dataInline,omitempty"`
}

// ObjectHashes maps algorithm ("sha256", "sha512") to the lower-case hex
// digest (hashes.json).
type ObjectHashes map[string]string

// CreateUploadRequest is create-upload-request.json.
type CreateUploadRequest struct {
	ProjectID             string                `json:"projectId"`
	UploadID              string                `json:"uploadId"`
	Expires               time.Time             `json:"expires"`
	ProposedUploadMethods ProposedUploadMethods `json:"proposedUploadMethods"`
	Hashes                ObjectHashes          `json:"hashes,omitempty"`
}

// MarshalJSON writes expires with millisecond precision (FormatTime).
func (r CreateUploadRequest) MarshalJSON() ([]byte, error) {
	type plain CreateUploadRequest
	return json.Marshal(struct {
		plain
		Expires string `json:"expires"`
	}{plain(r), FormatTime(r.Expires)})
}

// PutURLUploadResponse is upload-method-put-url.json#/definitions/response:
// PUT the data to URL with Headers, verbatim, before Expires.
type PutURLUploadResponse struct {
	URL     string            `json:"url"`
	Expires time.Time         `json:"expires"`
	Headers map[string]string `json:"headers"`
}

// UploadMethod is the method the service chose; at most one member is set
// and none means the service accepts no upload (e.g. already uploaded).
type UploadMethod struct {
	PutURL     *PutURLUploadResponse `json:"putUrl,omitempty"`
	DataInline bool                  `json:"dataInline,omitempty"`
}

// CreateUploadResponse is create-upload-response.json.
type CreateUploadResponse struct {
	ProjectID    string       `json:"projectId"`
	UploadID     string       `json:"uploadId"`
	Expires      time.Time    `json:"expires"`
	UploadMethod UploadMethod `json:"uploadMethod"`
}

// FinishUploadRequest is finish-upload-request.json.
type FinishUploadRequest struct {
	ProjectID string       `json:"projectId"`
	UploadID  string       `json:"uploadId"`
	Hashes    ObjectHashes `json:"hashes,omitempty"`
}

// AcceptDownloadMethods lists the download methods the caller supports
// (download-object-request.json).
type AcceptDownloadMethods struct {
	Simple bool `json:"simple,omitempty"`
	GetURL bool `json:"getUrl,omitempty"`
}

// DownloadObjectRequest is download-object-request.json.
type DownloadObjectRequest struct {
	AcceptDownloadMethods AcceptDownloadMethods `json:"acceptDownloadMethods"`
}

// DownloadObjectResponse is download-object-response.json: Method "simple"
// (URL only) or "getUrl" (URL, Expires, Hashes to verify).
type DownloadObjectResponse struct {
	Method  string       `json:"method"`
	URL     string       `json:"url"`
	Expires time.Time    `json:"expires,omitzero"`
	Hashes  ObjectHashes `json:"hashes,omitempty"`
}

// CreateUpload starts (or idempotently repeats) an upload of object name
// (object.createUpload).
func (o *Object) CreateUpload(ctx context.Context, name string, req *CreateUploadRequest) (*CreateUploadResponse, error) {
	var out CreateUploadResponse
	return &out, o.c.Call(ctx, "object", "object.createUpload", http.MethodPut, Route("/upload/<name>", name), nil, req, &out)
}

// FinishUpload marks the upload of object name complete
// (object.finishUpload).
func (o *Object) FinishUpload(ctx context.Context, name string, req *FinishUploadRequest) error {
	return o.c.Call(ctx, "object", "object.finishUpload", http.MethodPost, Route("/finish-upload/<name>", name), nil, req, nil)
}

// StartDownload asks how to download object name (object.startDownload).
func (o *Object) StartDownload(ctx context.Context, name string, req *DownloadObjectRequest) (*DownloadObjectResponse, error) {
	var out DownloadObjectResponse
	return &out, o.c.Call(ctx, "object", "object.startDownload", http.MethodPut, Route("/start-download/<name>", name), nil, req, &out)
}
