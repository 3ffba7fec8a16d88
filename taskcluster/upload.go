package taskcluster

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// Opener opens an upload's content from the start. It is called once per
// attempt, so a failed attempt can be retried without buffering the
// content: pass e.g. func() (io.ReadCloser, error) { return os.Open(path) }.
type Opener func() (io.ReadCloser, error)

// ErrBodyLength means the content an Opener gave was not exactly the
// declared ContentLength (the file changed during the upload).
var ErrBodyLength = errors.New("upload content length differs from the declared length")

// ErrNoUploadMethod means the Object service offered no upload method this
// client supports.
var ErrNoUploadMethod = errors.New("object service offered no putUrl upload method")

// PutOptions describe a PUT to a signed URL.
type PutOptions struct {
	// ContentLength is the exact content size in bytes; Content-Length is
	// always sent, also when it is 0.
	ContentLength int64
	// ContentType and ContentEncoding are sent as headers when non-empty.
	ContentType, ContentEncoding string
	// Headers are sent verbatim after the above (e.g. the Object service's
	// putUrl headers); a Content-Length member is ignored (ContentLength
	// rules).
	Headers map[string]string
	// Observe, when set, is called at the start of every attempt; the
	// content streamed by that attempt is also written to the returned
	// writer (e.g. hashes). Only the last, successful attempt's writer saw
	// the whole content.
	Observe func() io.Writer
}

// Put uploads content to a signed URL (an s3 artifact's putUrl, an Object
// service putUrl) without Hawk credentials: the URL carries its own
// signature. The content is streamed (memory does not grow with its size)
// and re-opened for each attempt; network errors and 5xx answers are
// retried as for API calls, 4xx answers and length mismatches are not.
func (c *Client) Put(ctx context.Context, putURL string, open Opener, opts PutOptions) error {
	u, err := url.Parse(putURL)
	if err != nil {
		return fmt.Errorf("parsing putUrl: %w", err)
	}
	if opts.ContentLength < 0 {
		return fmt.Errorf("put %s: negative content length %d", redact(u), opts.ContentLength)
	}
	hc := c.httpClient()
	attempt := func() (*http.Response, error) {
		rc, err := open()
		if err != nil {
			return nil, backoff.Permanent(fmt.Errorf("opening upload content: %w", err))
		}
		defer rc.Close()
		var body io.Reader = &exactReader{r: rc, left: opts.ContentLength}
		if opts.Observe != nil {
			body = io.TeeReader(body, opts.Observe())
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, putURL, io.NopCloser(body))
		if err != nil {
			return nil, backoff.Permanent(fmt.Errorf("put %s: %w", redact(u), err))
		}
		req.ContentLength = opts.ContentLength
		if opts.ContentLength == 0 {
			// With http.NoBody and length 0 net/http sends "Content-Length: 0"
			// for PUT; a non-nil body would be probed and sent chunked. The
			// content is still read to check that it is empty.
			if _, err := io.Copy(io.Discard, body); err != nil {
				return nil, backoff.Permanent(fmt.Errorf("put %s: %w", redact(u), err))
			}
			req.Body = http.NoBody
		}
		req.GetBody = nil
		if opts.ContentType != "" {
			req.Header.Set("Content-Type", opts.ContentType)
		}
		if opts.ContentEncoding != "" {
			req.Header.Set("Content-Encoding", opts.ContentEncoding)
		}
		for k, v := range opts.Headers {
			if http.CanonicalHeaderKey(k) == "Content-Length" {
				continue
			}
			req.Header.Set(k, v)
		}
		if c.UserAgent != "" {
			req.Header.Set("User-Agent", c.UserAgent)
		}
		resp, err := hc.Do(req)
		if err != nil {
			if errors.Is(err, ErrBodyLength) {
				return nil, backoff.Permanent(fmt.Errorf("put %s: %w", redact(u), ErrBodyLength))
			}
			return nil, fmt.Errorf("put %s: %w", redact(u), err)
		}
		defer resp.Body.Close()
		if resp.StatusCode >= 300 {
			apiErr := newAPIError(http.MethodPut, u, resp)
			if resp.StatusCode >= 500 {
				return nil, apiErr
			}
			return nil, backoff.Permanent(apiErr)
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
		return resp, nil
	}
	_, err = c.retry(ctx, "put "+redact(u), attempt)
	return err
}

// exactReader yields r's content and fails with ErrBodyLength when it ends
// before, or goes on after, left bytes. Extra content is detected by the
// read that delivers the last declared bytes, which then fails instead, so
// the server never receives a complete body of a file that grew.
type exactReader struct {
	r    io.Reader
	left int64
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.left == 0 {
		if err := e.noMore(); err != nil {
			return 0, err
		}
		return 0, io.EOF
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	switch {
	case err == io.EOF && e.left > 0:
		return n, ErrBodyLength
	case err == io.EOF:
		return n, nil
	case err != nil:
		return n, err
	case e.left == 0:
		if err := e.noMore(); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// noMore checks that r has no content beyond the declared length: nil at
// EOF, ErrBodyLength if a byte follows, or the read error.
func (e *exactReader) noMore() error {
	var one [1]byte
	for {
		n, err := e.r.Read(one[:])
		if n > 0 {
			return ErrBodyLength
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// redact drops the query (signatures) from u for messages.
func redact(u *url.URL) string {
	s := *u
	s.RawQuery = ""
	return s.String()
}

// ObjectUpload describes the upload of one object to the Object service.
type ObjectUpload struct {
	// Name is the object name, e.g. "t/<taskId>/<runId>/public/build.tar".
	Name, ProjectID, UploadID string
	// Expires is when the object may be deleted.
	Expires time.Time
	// ContentType and ContentLength describe the content.
	ContentType   string
	ContentLength int64
	// Open opens the content from the start (called per attempt).
	Open Opener
}

// Upload uploads an object with the putUrl method: createUpload, PUT to the
// URL with the headers the service gives, then finishUpload with the sha256
// and sha512 of the content, computed while streaming it. It returns those
// hashes. A 4xx answer to the PUT (e.g. an expired URL) is returned as is;
// calling Upload again with the same UploadID is safe (createUpload is
// idempotent) and yields a fresh URL.
func (o *Object) Upload(ctx context.Context, up *ObjectUpload) (ObjectHashes, error) {
	created, err := o.CreateUpload(ctx, up.Name, &CreateUploadRequest{
		ProjectID: up.ProjectID,
		UploadID:  up.UploadID,
		Expires:   up.Expires,
		ProposedUploadMethods: ProposedUploadMethods{
			PutURL: &PutURLUploadRequest{ContentType: up.ContentType, ContentLength: up.ContentLength},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("uploading object %q: %w", up.Name, err)
	}
	put := created.UploadMethod.PutURL
	if put == nil {
		return nil, fmt.Errorf("uploading object %q: %w", up.Name, ErrNoUploadMethod)
	}
	var s256, s512 hash.Hash
	err = o.c.Put(ctx, put.URL, up.Open, PutOptions{
		ContentLength: up.ContentLength,
		ContentType:   up.ContentType,
		Headers:       put.Headers,
		Observe: func() io.Writer {
			s256, s512 = sha256.New(), sha512.New()
			return bothHashes{s256, s512}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("uploading object %q: %w", up.Name, err)
	}
	hashes := ObjectHashes{
		"sha256": hex.EncodeToString(s256.Sum(nil)),
		"sha512": hex.EncodeToString(s512.Sum(nil)),
	}
	if err := o.FinishUpload(ctx, up.Name, &FinishUploadRequest{ProjectID: up.ProjectID, UploadID: up.UploadID, Hashes: hashes}); err != nil {
		return nil, fmt.Errorf("uploading object %q: %w", up.Name, err)
	}
	return hashes, nil
}

// bothHashes writes to two hashes, concurrently for large writes, so the
// sha256 and sha512 of an object upload take the time of the slower one.
type bothHashes struct{ a, b hash.Hash }

// parallelHashMin is the smallest write hashed on two goroutines.
const parallelHashMin = 16 << 10

func (h bothHashes) Write(p []byte) (int, error) {
	if len(p) < parallelHashMin {
		h.a.Write(p)
		h.b.Write(p)
		return len(p), nil
	}
	var wg sync.WaitGroup
	wg.Go(func() { h.b.Write(p) })
	h.a.Write(p)
	wg.Wait()
	return len(p), nil
}

// ArtifactUpload describes a file artifact to upload.
type ArtifactUpload struct {
	// StorageType is StorageS3 or StorageObject.
	StorageType string
	// ContentType is the artifact's MIME type.
	ContentType string
	// ContentEncoding (e.g. "gzip") is sent on s3 uploads only; the Object
	// service's putUrl headers are sent verbatim instead.
	ContentEncoding string
	// ContentLength is the exact size in bytes (0 is fine), sent with the
	// upload.
	ContentLength int64
	// OmitContentLength leaves contentLength (optional, informational)
	// out of the createArtifact request, so that it is identical to one
	// made before the length was known (see UploadCreatedArtifact).
	OmitContentLength bool
	// Expires is the artifact's expiry (not after the task's).
	Expires time.Time
	// Open opens the content from the start (called per attempt).
	Open Opener
}

// FileArtifactRequest is the createArtifact request UploadArtifact makes
// for a: storage type, content type and expiry, and contentLength unless
// a.OmitContentLength. It fails for a storage type other than StorageS3 or
// StorageObject.
func FileArtifactRequest(a *ArtifactUpload) (*PostArtifactRequest, error) {
	length := a.ContentLength
	if a.OmitContentLength {
		length = -1
	}
	switch a.StorageType {
	case StorageS3:
		return S3Artifact(a.ContentType, length, a.Expires), nil
	case StorageObject:
		return ObjectArtifact(a.ContentType, length, a.Expires), nil
	}
	return nil, fmt.Errorf("storage type %q is not s3 or object", a.StorageType)
}

// UploadArtifact creates a file artifact and uploads its content:
//   - s3: createArtifact, then PUT to the putUrl;
//   - object: createArtifact, then the Object service flow (Object.Upload)
//     with the artifact's own upload credentials, then finishArtifact.
//
// Calls are signed with the client's current credentials at each attempt,
// so a reclaim may swap the task credentials during the upload.
func (q *Queue) UploadArtifact(ctx context.Context, taskID string, runID int, name string, a *ArtifactUpload) error {
	req, err := FileArtifactRequest(a)
	if err != nil {
		return fmt.Errorf("uploading artifact %q: %w", name, err)
	}
	resp, err := q.CreateArtifact(ctx, taskID, runID, name, req)
	if err != nil {
		return fmt.Errorf("uploading artifact %q: %w", name, err)
	}
	return q.UploadCreatedArtifact(ctx, taskID, runID, name, resp, a)
}

// UploadCreatedArtifact uploads the content of a file artifact the Queue
// already created: created is its answer to createArtifact (made with
// FileArtifactRequest(a), possibly long before the content was complete).
// s3: PUT to created.PutURL; object: the Object service flow with
// created's credentials, then finishArtifact. An expired putUrl or
// credentials fail with the store's 4xx answer (StatusCode); a fresh
// createArtifact with the same request gives new ones.
func (q *Queue) UploadCreatedArtifact(ctx context.Context, taskID string, runID int, name string, created *PostArtifactResponse, a *ArtifactUpload) error {
	if created.StorageType != a.StorageType {
		return fmt.Errorf("uploading artifact %q: createArtifact answered storageType %q for a %q artifact", name, created.StorageType, a.StorageType)
	}
	switch a.StorageType {
	case StorageS3:
		if created.PutURL == "" {
			return fmt.Errorf("uploading artifact %q: createArtifact answered storageType %q without putUrl", name, created.StorageType)
		}
		err := q.c.Put(ctx, created.PutURL, a.Open, PutOptions{
			ContentLength:   a.ContentLength,
			ContentType:     a.ContentType,
			ContentEncoding: a.ContentEncoding,
		})
		if err != nil {
			return fmt.Errorf("uploading artifact %q: %w", name, err)
		}
		return nil
	default:
		if created.Name == "" || created.UploadID == "" {
			return fmt.Errorf("uploading artifact %q: createArtifact answered storageType %q without an object name and uploadId", name, created.StorageType)
		}
		oc := *q.c
		oc.Credentials = StaticCredentials(created.Credentials)
		oc.AuthorizedScopes = nil
		expires := created.Expires
		if expires.IsZero() {
			expires = a.Expires
		}
		_, err := oc.Object().Upload(ctx, &ObjectUpload{
			Name:          created.Name,
			ProjectID:     created.ProjectID,
			UploadID:      created.UploadID,
			Expires:       expires,
			ContentType:   a.ContentType,
			ContentLength: a.ContentLength,
			Open:          a.Open,
		})
		if err != nil {
			return fmt.Errorf("uploading artifact %q: %w", name, err)
		}
		if err := q.FinishArtifact(ctx, taskID, runID, name, created.UploadID); err != nil {
			return fmt.Errorf("uploading artifact %q: %w", name, err)
		}
		return nil
	}
}
