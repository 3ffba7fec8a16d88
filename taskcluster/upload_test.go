package taskcluster

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/taskcluster/hawk"
)

// putRecord is one PUT a fake storage endpoint received.
type putRecord struct {
	Header        http.Header
	ContentLength int64
	Body          []byte
	Query         string
}

// storage is a fake signed-URL storage endpoint on the fake server.
type storage struct {
	mu   sync.Mutex
	puts []putRecord
	// fail answers the first n PUTs with this status (0: succeed).
	failStatus int
	failN      int
}

func (s *storage) handler(t *testing.T) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		assert.Equal(t, http.MethodPut, r.Method)
		assert.Empty(t, r.Header.Get("Authorization"), "signed URLs carry no Hawk header")
		assert.Empty(t, r.TransferEncoding, "never chunked")
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		s.mu.Lock()
		s.puts = append(s.puts, putRecord{Header: r.Header.Clone(), ContentLength: r.ContentLength, Body: body, Query: r.URL.RawQuery})
		fail := len(s.puts) <= s.failN
		s.mu.Unlock()
		if fail {
			w.WriteHeader(s.failStatus)
			_, _ = w.Write([]byte("<Error><Code>InternalError</Code></Error>"))
			return
		}
		w.WriteHeader(http.StatusOK)
	}
}

func (s *storage) records() []putRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]putRecord(nil), s.puts...)
}

func writeFile(t *testing.T, content []byte) (string, *atomic.Int32, Opener) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "artifact")
	require.NoError(t, os.WriteFile(p, content, 0o600))
	var opens atomic.Int32
	return p, &opens, func() (io.ReadCloser, error) {
		opens.Add(1)
		return os.Open(p)
	}
}

func TestPut(t *testing.T) {
	f := newFakeTC(t)
	st := &storage{}
	f.onPath("/s3/bucket/a", st.handler(t))
	c := f.client(&workerCreds)
	ctx := context.Background()
	putURL := f.srv.URL + "/s3/bucket/a?X-Amz-Signature=abc"

	t.Run("empty file sends Content-Length 0", func(t *testing.T) {
		_, opens, open := writeFile(t, nil)
		require.NoError(t, c.Put(ctx, putURL, open, PutOptions{ContentLength: 0, ContentType: "text/plain"}))
		recs := st.records()
		last := recs[len(recs)-1]
		assert.Equal(t, int64(0), last.ContentLength)
		assert.Equal(t, "0", last.Header.Get("Content-Length"))
		assert.Equal(t, "text/plain", last.Header.Get("Content-Type"))
		assert.Empty(t, last.Body)
		assert.Equal(t, "X-Amz-Signature=abc", last.Query)
		assert.Equal(t, int32(1), opens.Load())
	})

	t.Run("headers and content", func(t *testing.T) {
		content := bytes.Repeat([]byte("0123456789"), 100_000)
		_, _, open := writeFile(t, content)
		require.NoError(t, c.Put(ctx, putURL, open, PutOptions{
			ContentLength: int64(len(content)), ContentType: "application/x-tar", ContentEncoding: "gzip",
			Headers: map[string]string{"x-amz-meta-a": "b", "Content-Length": "999"},
		}))
		recs := st.records()
		last := recs[len(recs)-1]
		assert.Equal(t, int64(len(content)), last.ContentLength)
		assert.Equal(t, "gzip", last.Header.Get("Content-Encoding"))
		assert.Equal(t, "application/x-tar", last.Header.Get("Content-Type"))
		assert.Equal(t, "b", last.Header.Get("X-Amz-Meta-A"))
		assert.True(t, bytes.Equal(content, last.Body))
	})

	t.Run("5xx retried from a re-opened body", func(t *testing.T) {
		st.mu.Lock()
		st.puts, st.failN, st.failStatus = nil, 2, 500
		st.mu.Unlock()
		content := []byte("hello world")
		_, opens, open := writeFile(t, content)
		require.NoError(t, c.Put(ctx, putURL, open, PutOptions{ContentLength: int64(len(content))}))
		recs := st.records()
		require.Len(t, recs, 3)
		for _, r := range recs {
			assert.Equal(t, content, r.Body)
		}
		assert.Equal(t, int32(3), opens.Load())
	})

	t.Run("4xx not retried", func(t *testing.T) {
		st.mu.Lock()
		st.puts, st.failN, st.failStatus = nil, 5, 403
		st.mu.Unlock()
		_, _, open := writeFile(t, []byte("x"))
		err := c.Put(ctx, putURL, open, PutOptions{ContentLength: 1})
		var apiErr *APIError
		require.ErrorAs(t, err, &apiErr)
		assert.Equal(t, 403, apiErr.StatusCode)
		assert.NotContains(t, err.Error(), "X-Amz-Signature", "signatures are not logged")
		assert.Len(t, st.records(), 1)
		st.mu.Lock()
		st.failN = 0
		st.mu.Unlock()
	})

	t.Run("length mismatch is permanent", func(t *testing.T) {
		st.mu.Lock()
		st.puts = nil
		st.mu.Unlock()
		_, opens, open := writeFile(t, []byte("short"))
		err := c.Put(ctx, putURL, open, PutOptions{ContentLength: 10})
		assert.ErrorIs(t, err, ErrBodyLength)
		assert.Equal(t, int32(1), opens.Load())

		_, opens, open = writeFile(t, []byte("not empty"))
		err = c.Put(ctx, putURL, open, PutOptions{ContentLength: 0})
		assert.ErrorIs(t, err, ErrBodyLength)
		assert.Equal(t, int32(1), opens.Load())

		_, opens, open = writeFile(t, []byte("longer than declared"))
		err = c.Put(ctx, putURL, open, PutOptions{ContentLength: 3})
		assert.ErrorIs(t, err, ErrBodyLength)
		assert.Equal(t, int32(1), opens.Load())
	})

	t.Run("open error", func(t *testing.T) {
		err := c.Put(ctx, putURL, func() (io.ReadCloser, error) { return nil, os.ErrNotExist }, PutOptions{ContentLength: 1})
		assert.ErrorIs(t, err, os.ErrNotExist)
	})
}

func TestExactReader(t *testing.T) {
	for _, tc := range []struct {
		content string
		n       int64
		err     error
	}{
		{"abc", 3, nil}, {"", 0, nil}, {"ab", 3, ErrBodyLength}, {"abcd", 3, ErrBodyLength},
	} {
		got, err := io.ReadAll(&exactReader{r: strings.NewReader(tc.content), left: tc.n})
		if tc.err != nil {
			assert.ErrorIs(t, err, tc.err, tc.content)
			continue
		}
		require.NoError(t, err)
		assert.Equal(t, tc.content, string(got))
	}
}

// TestUploadArtifactS3 runs createArtifact then the PUT.
func TestUploadArtifactS3(t *testing.T) {
	f := newFakeTC(t)
	st := &storage{}
	f.onPath("/s3/artifact", st.handler(t))
	expires := time.Now().Add(time.Hour)
	var sentName atomic.Value
	f.on("queue.createArtifact", func(args map[string]string, body []byte, _ *hawk.Identity) reply {
		sentName.Store(args["name"])
		var req map[string]any
		require.NoError(t, json.Unmarshal(body, &req))
		assert.Equal(t, "s3", req["storageType"])
		assert.Equal(t, float64(0), req["contentLength"])
		return reply{Body: map[string]any{"storageType": "s3", "putUrl": f.srv.URL + "/s3/artifact?sig=1", "expires": expires, "contentType": "text/plain"}}
	})
	_, _, open := writeFile(t, nil)
	q := f.client(&workerCreds).Queue()
	require.NoError(t, q.UploadArtifact(context.Background(), taskID, 0, "public/empty file+1.txt", &ArtifactUpload{
		StorageType: StorageS3, ContentType: "text/plain", ContentLength: 0, Expires: expires, Open: open,
	}))
	assert.Equal(t, "public/empty file+1.txt", sentName.Load())
	recs := st.records()
	require.Len(t, recs, 1)
	assert.Equal(t, "0", recs[0].Header.Get("Content-Length"))

	err := q.UploadArtifact(context.Background(), taskID, 0, "x", &ArtifactUpload{StorageType: "azure"})
	assert.Error(t, err)
}

// TestUploadArtifactObject runs createArtifact, createUpload, PUT,
// finishUpload (with hashes computed while streaming) and finishArtifact,
// the Object service calls signed with the artifact's own credentials.
func TestUploadArtifactObject(t *testing.T) {
	f := newFakeTC(t)
	st := &storage{failN: 1, failStatus: 503}
	f.onPath("/objects/put", st.handler(t))
	expires := time.Now().Add(time.Hour).UTC()
	content := bytes.Repeat([]byte("object data "), 10_000)
	objectName := "t/" + taskID + "/0/public/a b+c.bin"
	objCreds, err := hawk.CreateTemporaryCredentials(Credentials{ClientID: "worker-two", AccessToken: "worker-two-token"}, "", []string{"object:upload:proj:" + objectName}, time.Now(), expires)
	require.NoError(t, err)

	f.on("queue.createArtifact", func(args map[string]string, body []byte, id *hawk.Identity) reply {
		assert.Equal(t, "worker", id.ClientID)
		assert.JSONEq(t, `{"storageType":"object","contentType":"application/octet-stream","contentLength":`+
			jsonInt(len(content))+`,"expires":"`+FormatTime(expires)+`"}`, string(body))
		return reply{Body: map[string]any{"storageType": "object", "name": objectName, "projectId": "proj", "uploadId": uploadID, "expires": expires,
			"credentials": map[string]string{"clientId": objCreds.ClientID, "accessToken": objCreds.AccessToken, "certificate": objCreds.Certificate}}}
	})
	f.on("object.createUpload", func(args map[string]string, body []byte, id *hawk.Identity) reply {
		assert.Equal(t, objectName, args["name"])
		assert.Equal(t, "worker-two", id.ClientID)
		var req CreateUploadRequest
		require.NoError(t, json.Unmarshal(body, &req))
		assert.Equal(t, int64(len(content)), req.ProposedUploadMethods.PutURL.ContentLength)
		return reply{Body: map[string]any{"projectId": "proj", "uploadId": uploadID, "expires": expires,
			"uploadMethod": map[string]any{"putUrl": map[string]any{"url": f.srv.URL + "/objects/put?sig=2", "expires": expires,
				"headers": map[string]string{"Content-Type": "application/octet-stream", "x-amz-checksum": "none"}}}}}
	})
	var finished FinishUploadRequest
	f.on("object.finishUpload", func(args map[string]string, body []byte, id *hawk.Identity) reply {
		assert.Equal(t, "worker-two", id.ClientID)
		require.NoError(t, json.Unmarshal(body, &finished))
		return reply{Status: 204}
	})
	f.on("queue.finishArtifact", func(args map[string]string, body []byte, id *hawk.Identity) reply {
		assert.Equal(t, "worker", id.ClientID)
		assert.JSONEq(t, `{"uploadId":"`+uploadID+`"}`, string(body))
		return reply{Status: 204}
	})

	_, opens, open := writeFile(t, content)
	err = f.client(&workerCreds).Queue().UploadArtifact(context.Background(), taskID, 0, "public/a b+c.bin", &ArtifactUpload{
		StorageType: StorageObject, ContentType: "application/octet-stream", ContentLength: int64(len(content)), Expires: expires, Open: open,
	})
	require.NoError(t, err)
	s256, s512 := sha256.Sum256(content), sha512.Sum512(content)
	assert.Equal(t, ObjectHashes{"sha256": hex.EncodeToString(s256[:]), "sha512": hex.EncodeToString(s512[:])}, finished.Hashes)
	assert.Equal(t, uploadID, finished.UploadID)
	assert.Equal(t, int32(2), opens.Load(), "one retry after the 503")
	recs := st.records()
	require.Len(t, recs, 2)
	assert.Equal(t, "none", recs[1].Header.Get("X-Amz-Checksum"))
	assert.True(t, bytes.Equal(content, recs[1].Body))
	for _, name := range []string{"queue.createArtifact", "object.createUpload", "object.finishUpload", "queue.finishArtifact"} {
		assert.Equal(t, 1, f.count(name), name)
	}
}

func TestObjectUploadNoMethod(t *testing.T) {
	f := newFakeTC(t)
	f.on("object.createUpload", func(map[string]string, []byte, *hawk.Identity) reply {
		return reply{Body: map[string]any{"projectId": "proj", "uploadId": uploadID, "expires": time.Now().Add(time.Hour), "uploadMethod": map[string]any{}}}
	})
	_, _, open := writeFile(t, []byte("x"))
	_, err := f.client(&workerCreds).Object().Upload(context.Background(), &ObjectUpload{
		Name: "o", ProjectID: "proj", UploadID: uploadID, Expires: time.Now().Add(time.Hour), ContentType: "text/plain", ContentLength: 1, Open: open,
	})
	assert.True(t, errors.Is(err, ErrNoUploadMethod), err)
}

func jsonInt(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// TestFileArtifactRequestWithoutLength: OmitContentLength leaves the
// optional contentLength out, so a request made before the length was
// known and one made after it are the same; UploadCreatedArtifact refuses
// an answer of another storage type.
func TestFileArtifactRequestWithoutLength(t *testing.T) {
	expires := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, st := range []string{StorageS3, StorageObject} {
		early, err := FileArtifactRequest(&ArtifactUpload{StorageType: st, ContentType: "text/plain", Expires: expires, OmitContentLength: true})
		require.NoError(t, err)
		late, err := FileArtifactRequest(&ArtifactUpload{StorageType: st, ContentType: "text/plain", Expires: expires, ContentLength: 42, OmitContentLength: true})
		require.NoError(t, err)
		a, err := json.Marshal(early)
		require.NoError(t, err)
		b, err := json.Marshal(late)
		require.NoError(t, err)
		assert.JSONEq(t, `{"storageType": "`+st+`", "contentType": "text/plain", "expires": "2030-01-02T03:04:05.000Z"}`, string(a))
		assert.Equal(t, string(a), string(b))
		withLength, err := FileArtifactRequest(&ArtifactUpload{StorageType: st, ContentType: "text/plain", Expires: expires, ContentLength: 42})
		require.NoError(t, err)
		assert.Equal(t, int64(42), *withLength.ContentLength)
	}
	_, err := FileArtifactRequest(&ArtifactUpload{StorageType: "azure"})
	assert.ErrorContains(t, err, `"azure"`)
	q := (&Client{RootURL: "http://127.0.0.1:1"}).Queue()
	err = q.UploadCreatedArtifact(context.Background(), "t", 0, "public/x", &PostArtifactResponse{StorageType: StorageObject}, &ArtifactUpload{StorageType: StorageS3})
	assert.ErrorContains(t, err, `answered storageType "object" for a "s3" artifact`)
}
