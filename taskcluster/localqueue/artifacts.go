package localqueue

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/workergen/workergen/taskcluster"
	"github.com/workergen/workergen/taskcluster/hawk"
	"github.com/workergen/workergen/taskcluster/tcwire"
)

// Upload and download URLs the server signs (like S3 pre-signed URLs) are
// valid this long.
const (
	putURLLifetime = 45 * time.Minute
	getURLLifetime = 30 * time.Minute
)

// postArtifactRequest is post-artifact-request.json (all variants).
type postArtifactRequest struct {
	StorageType   string     `json:"storageType"`
	ContentType   *string    `json:"contentType"`
	ContentLength *int64     `json:"contentLength"`
	Expires       *time.Time `json:"expires"`
	URL           *string    `json:"url"`
	Artifact      *string    `json:"artifact"`
	Reason        *string    `json:"reason"`
	Message       *string    `json:"message"`
}

var errorArtifactReasons = map[string]bool{
	"file-missing-on-worker":      true,
	"invalid-resource-on-worker":  true,
	"too-large-file-on-worker":    true,
	"file-not-readable-on-worker": true,
}

// parsePostArtifact validates a createArtifact body as the oneOf of
// post-artifact-request.json does: the fields each storage type allows and
// requires.
func parsePostArtifact(body []byte) (postArtifactRequest, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return postArtifactRequest{}, errInput("artifact request: %v", err)
	}
	var req postArtifactRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return postArtifactRequest{}, errInput("artifact request: %v", err)
	}
	var allowed, required []string
	switch req.StorageType {
	case "s3", "object":
		allowed = []string{"storageType", "contentType", "contentLength", "expires"}
		required = []string{"storageType", "expires", "contentType"}
	case "reference":
		allowed = []string{"storageType", "contentType", "expires", "url"}
		required = []string{"storageType", "expires", "url", "contentType"}
	case "link":
		allowed = []string{"storageType", "contentType", "expires", "artifact"}
		required = []string{"storageType", "expires", "artifact"}
	case "error":
		allowed = []string{"storageType", "expires", "reason", "message"}
		required = []string{"storageType", "expires", "reason", "message"}
	default:
		return req, errInput("storageType %q is not one of s3, object, reference, link, error", req.StorageType)
	}
	for k := range raw {
		if !containsString(allowed, k) {
			return req, errInput("property %q is not allowed for storageType %s", k, req.StorageType)
		}
	}
	for _, k := range required {
		if _, ok := raw[k]; !ok {
			return req, errInput("property %q is required for storageType %s", k, req.StorageType)
		}
	}
	if req.ContentType != nil && len(*req.ContentType) > 255 {
		return req, errInput("contentType longer than 255 characters")
	}
	if req.ContentLength != nil && *req.ContentLength < 0 {
		return req, errInput("contentLength must not be negative")
	}
	if req.URL != nil {
		if u, err := url.Parse(*req.URL); err != nil || !u.IsAbs() {
			return req, errInput("url %q is not an absolute URI", *req.URL)
		}
	}
	if req.Reason != nil && !errorArtifactReasons[*req.Reason] {
		return req, errInput("reason %q is not a known error artifact reason", *req.Reason)
	}
	if req.Message != nil && len(*req.Message) > 4096 {
		return req, errInput("message longer than 4096 characters")
	}
	return req, nil
}

// objectName is the object-service name of an object artifact.
func objectName(taskID string, runID int, name string) string {
	return "t/" + taskID + "/" + itoa(runID) + "/" + name
}

// createArtifactResult is post-artifact-response.json (all variants).
type createArtifactResult struct {
	StorageType string       `json:"storageType"`
	ContentType string       `json:"contentType,omitempty"`
	Expires     *time.Time   `json:"expires,omitempty"`
	PutURL      string       `json:"putUrl,omitempty"`
	Name        string       `json:"name,omitempty"`
	ProjectID   string       `json:"projectId,omitempty"`
	UploadID    string       `json:"uploadId,omitempty"`
	Credentials *Credentials `json:"credentials,omitempty"`
}

// createArtifact implements createArtifact after authorization. base is the
// server URL for the putUrl.
func (s *Server) createArtifact(taskID string, runID int, name string, req postArtifactRequest, base string) (createArtifactResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, r, err := s.runLocked(taskID, runID)
	if err != nil {
		return createArtifactResult{}, err
	}
	now := s.now()
	expires := req.Expires.UTC()
	if err := artifactAllowed(t, r, expires, now); err != nil {
		return createArtifactResult{}, err
	}
	contentType := "application/binary"
	if req.ContentType != nil {
		contentType = *req.ContentType
	}
	a := &artifactRecord{
		TaskID: taskID, RunID: runID, Name: name,
		StorageType: req.StorageType, ContentType: contentType, Expires: expires,
		ContentLength: req.ContentLength,
	}
	switch req.StorageType {
	case "s3":
		a.Present = true
	case "object":
		a.ObjectName = objectName(taskID, runID, name)
		a.ProjectID = t.Definition.ProjectID
		a.UploadID = NewTaskID()
	case "reference":
		a.Present, a.URL = true, *req.URL
	case "link":
		a.Present, a.Link = true, *req.Artifact
	case "error":
		a.Present, a.Reason, a.Message = true, *req.Reason, *req.Message
	}
	key := artifactKey(taskID, runID, name)
	var objects []*objectRecord
	if old := s.artifacts[key]; old != nil {
		if err := compatibleArtifacts(old, a); err != nil {
			return createArtifactResult{}, err
		}
		n := *old
		n.StorageType, n.Expires, n.URL, n.Link = a.StorageType, a.Expires, a.URL, a.Link
		if a.StorageType == "link" {
			n.URL = ""
		}
		if a.ContentLength != nil {
			n.ContentLength = a.ContentLength
		}
		a = &n
	} else {
		switch a.StorageType {
		case "s3":
			a.Blob = newBlobKey(taskID, itoa(runID)+"/"+name)
		case "object":
			// Lock in the object-service upload (projectId, uploadId,
			// expires) as the Queue does with an empty createUpload.
			if o := s.objects[a.ObjectName]; o != nil {
				return createArtifactResult{}, errConflict("object %q already exists", a.ObjectName)
			}
			objects = append(objects, &objectRecord{Name: a.ObjectName, ProjectID: a.ProjectID, UploadID: a.UploadID, Expires: a.Expires, Blob: newBlobKey(taskID, itoa(runID)+"/"+name)})
		}
	}
	if err := s.st.commit(write{artifacts: []*artifactRecord{a}, objects: objects}); err != nil {
		return createArtifactResult{}, err
	}
	s.artifacts[key] = a
	for _, o := range objects {
		s.objects[o.Name] = o
	}
	return s.artifactAnswer(a, r, base, now)
}

// artifactAllowed applies the Queue's rules on when run r of t may get an
// artifact expiring at expires: not in the past, not after the task, only
// for a claimed run that is running (or resolved exception within
// ArtifactExceptionGrace).
func artifactAllowed(t *taskRecord, r *Run, expires, now time.Time) error {
	if expires.Before(now.Add(-allowedDrift)) {
		return errInput("artifact expires %s must be in the future", fmtTime(expires))
	}
	if expires.After(t.Definition.Expires) {
		return errInput("artifact expires (%s) after the task expiration %s (task.expires < expires) - this is not allowed, artifacts may not expire after the task they belong to expires",
			fmtTime(expires), fmtTime(t.Definition.Expires))
	}
	if r.WorkerGroup == "" {
		return errInput("run was not claimed by a worker and so no artifacts can exist")
	}
	if r.State != tcwire.StateRunning {
		if r.State != tcwire.StateException || !r.Resolved.After(now.Add(-ArtifactExceptionGrace)) {
			return errConflict("artifacts cannot be created for a task after it is resolved, unless it is resolved 'exception', and even in this case only up to 25 min past resolution (run %d of task `%s` is %s)",
				r.RunID, t.TaskID, r.State)
		}
	}
	return nil
}

// artifactAnswer is createArtifact's answer for the stored artifact a of
// run r: a putUrl for s3, upload credentials for object.
func (s *Server) artifactAnswer(a *artifactRecord, r *Run, base string, now time.Time) (createArtifactResult, error) {
	taskID, runID := a.TaskID, a.RunID
	res := createArtifactResult{StorageType: a.StorageType}
	switch a.StorageType {
	case "s3":
		exp := now.Add(putURLLifetime)
		res.ContentType, res.Expires = a.ContentType, &exp
		res.PutURL = s.signedURL(base, "put", a.Blob, a.ContentType, exp)
	case "object":
		credExpiry := now.Add(24 * time.Hour)
		if a.Expires.Before(credExpiry) {
			credExpiry = a.Expires
		}
		c, err := hawk.CreateTemporaryCredentials(s.issuer, "artifact-upload/"+taskID+"/"+itoa(runID)+"/on/"+r.WorkerGroup+"/"+r.WorkerID,
			[]string{"object:upload:" + a.ProjectID + ":" + a.ObjectName}, now, credExpiry)
		if err != nil {
			return createArtifactResult{}, fmt.Errorf("issuing object credentials: %w", err)
		}
		exp := a.Expires
		res.Name, res.ProjectID, res.UploadID, res.Expires = a.ObjectName, a.ProjectID, a.UploadID, &exp
		res.Credentials = &c
	}
	return res, nil
}

// compatibleArtifacts applies the Queue's rules for a createArtifact call
// repeating an existing artifact: the content type stays (links have
// none), the expiry may grow but not shrink, the details stay except a
// reference's url, and the only storage-type change allowed is reference
// to link (a live log becoming a link to its backing log). Unlike the
// Queue, repeating an unfinished object artifact returns the same upload
// rather than a conflict.
func compatibleArtifacts(old, a *artifactRecord) error {
	conflict := func(why string) error {
		return errConflict("artifact %q already exists with different properties (%s): storageType %s, contentType %s, expires %s",
			a.Name, why, old.StorageType, old.ContentType, fmtTime(old.Expires))
	}
	if a.StorageType != "link" && old.ContentType != a.ContentType {
		return conflict("contentType")
	}
	if old.Expires.After(a.Expires) {
		return conflict("earlier expires")
	}
	switch {
	case old.StorageType == a.StorageType:
		if a.StorageType != "reference" && (old.Link != a.Link || old.Reason != a.Reason || old.Message != a.Message) {
			return conflict("details")
		}
		if a.StorageType == "object" && old.Present {
			return conflict("object already finished")
		}
	case old.StorageType == "reference" && a.StorageType == "link":
	default:
		return conflict("storageType")
	}
	return nil
}

// finishArtifact marks an object artifact present once its object upload
// finished (finish-artifact-request.json).
func (s *Server) finishArtifact(taskID string, runID int, name, uploadID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, _, err := s.runLocked(taskID, runID); err != nil {
		return err
	}
	key := artifactKey(taskID, runID, name)
	a := s.artifacts[key]
	if a == nil {
		return errNotFound("artifact %q not found on run %d of task `%s`", name, runID, taskID)
	}
	if a.StorageType != "object" {
		return errInput("only object artifacts can be finished; %q has storageType %s", name, a.StorageType)
	}
	if a.Present {
		return nil
	}
	if a.UploadID != uploadID {
		return errInput("given uploadId does not match that for artifact %q", name)
	}
	o := s.objects[a.ObjectName]
	if o == nil || !o.Finished || o.UploadID != uploadID {
		return errInput("object storing the data of artifact %q does not exist (upload not finished)", name)
	}
	n := *a
	n.Present = true
	if err := s.st.commit(write{artifacts: []*artifactRecord{&n}}); err != nil {
		return err
	}
	s.artifacts[key] = &n
	return nil
}

// artifactInfo is artifact-response.json, the client's type.
type artifactInfo = taskcluster.Artifact

// runArtifactsLocked returns a run's artifacts sorted by name.
func (s *Server) runArtifactsLocked(taskID string, runID int) []*artifactRecord {
	prefix := artifactPrefix(taskID, runID)
	var out []*artifactRecord
	for k, a := range s.artifacts {
		if strings.HasPrefix(k, prefix) {
			out = append(out, a)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// listArtifacts lists the present artifacts of a run (list-artifacts-response.json).
// A run of -1 means the latest run.
func (s *Server) listArtifacts(taskID string, runID int) ([]artifactInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	runID, err := s.resolveRunIDLocked(taskID, runID)
	if err != nil {
		return nil, err
	}
	infos := []artifactInfo{}
	for _, a := range s.runArtifactsLocked(taskID, runID) {
		if !a.Present {
			continue
		}
		infos = append(infos, artifactInfo{StorageType: a.StorageType, Name: a.Name, Expires: a.Expires, ContentType: a.ContentType, ContentLength: a.ContentLength})
	}
	return infos, nil
}

func (s *Server) resolveRunIDLocked(taskID string, runID int) (int, error) {
	t, err := s.taskLocked(taskID)
	if err != nil {
		return 0, err
	}
	if runID < 0 {
		if len(t.Runs) == 0 {
			return 0, errNotFound("task `%s` has no runs", taskID)
		}
		return len(t.Runs) - 1, nil
	}
	if runID >= len(t.Runs) {
		return 0, errNotFound("run %d not found on task `%s`", runID, taskID)
	}
	return runID, nil
}

// artifactTarget is where getArtifact sends a client.
type artifactTarget struct {
	storageType string
	url         string // 303 target
	reason      string // error artifacts
	message     string
	name        string // after following links
	objectName  string // object artifacts
}

// lookupArtifact finds an artifact, following links within the run. check
// is called with each artifact name visited (scope checks); a link cycle
// is an input error.
func (s *Server) lookupArtifact(taskID string, runID int, name, base string, check func(name string) error) (artifactTarget, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	runID, err := s.resolveRunIDLocked(taskID, runID)
	if err != nil {
		return artifactTarget{}, err
	}
	seen := map[string]bool{}
	for {
		if err := check(name); err != nil {
			return artifactTarget{}, err
		}
		if seen[name] {
			return artifactTarget{}, errInput("artifact link cycle at %q", name)
		}
		seen[name] = true
		a := s.artifacts[artifactKey(taskID, runID, name)]
		if a == nil || !a.Present {
			return artifactTarget{}, errNotFound("artifact %q not found on run %d of task `%s`", name, runID, taskID)
		}
		tgt := artifactTarget{storageType: a.StorageType, name: name}
		switch a.StorageType {
		case "link":
			name = a.Link
			continue
		case "s3":
			tgt.url = s.signedURL(base, "get", a.Blob, "", s.now().Add(getURLLifetime))
		case "object":
			o := s.objects[a.ObjectName]
			if o == nil {
				return artifactTarget{}, errNotFound("object of artifact %q not found", name)
			}
			tgt.url = s.signedURL(base, "get", o.Blob, "", s.now().Add(getURLLifetime))
			tgt.objectName = a.ObjectName
		case "reference":
			tgt.url = a.URL
		case "error":
			tgt.reason, tgt.message = a.Reason, a.Message
		}
		return tgt, nil
	}
}

// Artifacts returns a run's artifacts sorted by name, with the uploaded
// bytes of s3 and object artifacts read from disk.
func (s *Server) Artifacts(taskID string, runID int) ([]Artifact, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, _, err := s.runLocked(taskID, runID); err != nil {
		return nil, err
	}
	out := []Artifact{}
	for _, a := range s.runArtifactsLocked(taskID, runID) {
		art := Artifact{
			Name: a.Name, StorageType: a.StorageType, ContentType: a.ContentType, Expires: a.Expires,
			Present: a.Present, URL: a.URL, Link: a.Link, Reason: a.Reason, Message: a.Message,
		}
		blob := a.Blob
		if a.StorageType == "object" {
			if o := s.objects[a.ObjectName]; o != nil {
				blob = o.Blob
			}
		}
		if b := s.blobs[blob]; blob != "" && b != nil && b.Uploaded {
			data, err := s.readBlobLocked(b)
			if err != nil {
				return nil, fmt.Errorf("reading artifact %q: %w", a.Name, err)
			}
			art.Content, art.Uploaded, art.ContentEncoding = data, true, b.ContentEncoding
		}
		out = append(out, art)
	}
	return out, nil
}

// ArtifactPath returns the file holding the uploaded bytes of an s3 or
// object artifact, for callers that want to show or stream it rather than
// load it (Artifacts). It fails with ErrNotFound when nothing was uploaded.
func (s *Server) ArtifactPath(taskID string, runID int, name string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.artifacts[artifactKey(taskID, runID, name)]
	if a == nil {
		return "", errNotFound("artifact %q not found on run %d of task `%s`", name, runID, taskID)
	}
	blob := a.Blob
	if a.StorageType == "object" {
		if o := s.objects[a.ObjectName]; o != nil {
			blob = o.Blob
		}
	}
	b := s.blobs[blob]
	if blob == "" || b == nil || !b.Uploaded {
		return "", errNotFound("artifact %q has no uploaded content", name)
	}
	path := s.st.blobPath(blob)
	if b.Inline {
		// The bytes are in queue.db: write them out for the caller once.
		if _, err := os.Stat(path); err != nil {
			data, err := s.st.inlineData(blob)
			if err != nil {
				return "", err
			}
			if err := writeFileAtomic(path, data); err != nil {
				return "", fmt.Errorf("writing out artifact %q: %w", name, err)
			}
		}
	}
	return path, nil
}

// writeFileAtomic writes data to path (mode 0600, as uploads are) through
// a temporary file and a rename, creating the directory.
func writeFileAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// readBlobLocked returns an uploaded blob's bytes, from queue.db or its
// file.
func (s *Server) readBlobLocked(b *blobRecord) ([]byte, error) {
	if b.Inline {
		return s.st.inlineData(b.Key)
	}
	return os.ReadFile(s.st.blobPath(b.Key))
}

// openBlob opens an uploaded blob's bytes, from queue.db or its file.
func (s *Server) openBlob(b *blobRecord) (io.ReadSeekCloser, error) {
	if !b.Inline {
		return os.Open(s.st.blobPath(b.Key))
	}
	data, err := s.st.inlineData(b.Key)
	if err != nil {
		return nil, err
	}
	return nopSeekCloser{bytes.NewReader(data)}, nil
}

// nopSeekCloser is a ReadSeeker with a Close that does nothing.
type nopSeekCloser struct{ io.ReadSeeker }

func (nopSeekCloser) Close() error { return nil }

// signedURL returns a URL of this server for op ("put" or "get") on a
// blob, valid until exp, signed with the server secret so that clients use
// it without Hawk, like a pre-signed S3 URL. A put URL also binds the
// content type the upload must declare.
func (s *Server) signedURL(base, op, blob, contentType string, exp time.Time) string {
	q := url.Values{}
	q.Set("expires", strconv.FormatInt(exp.Unix(), 10))
	if op == "put" {
		q.Set("contentType", contentType)
	}
	q.Set("signature", s.blobSignature(op, blob, contentType, exp.Unix()))
	return base + "/_localqueue/" + op + "/" + escapePath(blob) + "?" + q.Encode()
}

func (s *Server) blobSignature(op, blob, contentType string, exp int64) string {
	m := hmac.New(sha256.New, s.secret)
	fmt.Fprintf(m, "%s\n%s\n%s\n%d", op, blob, contentType, exp)
	return hex.EncodeToString(m.Sum(nil))
}

// checkBlobURL verifies a signed URL's query for op on blob.
func (s *Server) checkBlobURL(op, blob string, q url.Values) error {
	exp, err := strconv.ParseInt(q.Get("expires"), 10, 64)
	if err != nil {
		return &apiError{403, "SignatureDoesNotMatch", "missing or bad expires", ErrAuth}
	}
	want := s.blobSignature(op, blob, q.Get("contentType"), exp)
	if !hmac.Equal([]byte(want), []byte(q.Get("signature"))) {
		return &apiError{403, "SignatureDoesNotMatch", "the URL signature does not match", ErrAuth}
	}
	if s.clock.Now().Unix() > exp {
		return &apiError{403, "AccessDenied", "the URL expired", ErrAuth}
	}
	return nil
}

// storeBlob streams body to the blob's file (atomically: a temporary file
// renamed into place) and records it. size is the declared Content-Length;
// fewer or more bytes fail the upload.
func (s *Server) storeBlob(blob, contentType, contentEncoding string, size int64, body io.Reader) error {
	if size <= inlineBlobMax {
		return s.storeInlineBlob(blob, contentType, contentEncoding, size, body)
	}
	path := s.st.blobPath(blob)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("storing upload: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".upload-*")
	if err != nil {
		return fmt.Errorf("storing upload: %w", err)
	}
	tmp := f.Name()
	defer func() { _ = os.Remove(tmp) }()
	n, err := io.Copy(f, io.LimitReader(body, size+1))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("storing upload: %w", err)
	}
	if n != size {
		return errInput("upload body has %d bytes, Content-Length said %d", n, size)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("storing upload: %w", err)
	}
	b := &blobRecord{Key: blob, ContentType: contentType, ContentEncoding: contentEncoding, Size: size, Uploaded: true}
	w := write{blobs: []*blobRecord{b}}
	if old := s.blobs[blob]; old != nil && old.Inline {
		w.blobData = map[string][]byte{blob: nil} // an earlier, smaller upload's
	}
	if err := s.st.commit(w); err != nil {
		return err
	}
	s.blobs[blob] = b
	return nil
}

// inlineBlobMax is the largest upload kept in queue.db (bucket blobdata)
// rather than in a file of its own, in bytes. A small upload, such as a
// short task's log, then creates no file: on a busy ext4 file system,
// allocating the inode of a new file was most of what a PUT cost.
const inlineBlobMax = 64 << 10

// storeInlineBlob stores an upload of at most inlineBlobMax bytes in
// queue.db.
func (s *Server) storeInlineBlob(blob, contentType, contentEncoding string, size int64, body io.Reader) error {
	data, err := io.ReadAll(io.LimitReader(body, size+1))
	if err != nil {
		return fmt.Errorf("storing upload: %w", err)
	}
	if int64(len(data)) != size {
		return errInput("upload body has %d bytes, Content-Length said %d", len(data), size)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	b := &blobRecord{Key: blob, ContentType: contentType, ContentEncoding: contentEncoding, Size: size, Uploaded: true, Inline: true}
	if err := s.st.commit(write{blobs: []*blobRecord{b}, blobData: map[string][]byte{blob: data}}); err != nil {
		return err
	}
	if old := s.blobs[blob]; old != nil && !old.Inline {
		_ = os.Remove(s.st.blobPath(blob)) // an earlier, larger upload's
	}
	s.blobs[blob] = b
	return nil
}

// blobHashes computes the hashes an object's bytes have, for the
// algorithms named in want.
func (s *Server) blobHashes(blob string, want map[string]string) (map[string]string, error) {
	hs := map[string]hash.Hash{}
	for alg := range want {
		switch alg {
		case "sha256":
			hs[alg] = sha256.New()
		case "sha512":
			hs[alg] = sha512.New()
		}
	}
	if len(hs) == 0 {
		return map[string]string{}, nil
	}
	b, err := s.blob(blob)
	if err != nil {
		return nil, fmt.Errorf("hashing object: %w", err)
	}
	f, err := s.openBlob(b)
	if err != nil {
		return nil, fmt.Errorf("hashing object: %w", err)
	}
	defer func() { _ = f.Close() }()
	ws := make([]io.Writer, 0, len(hs))
	for _, h := range hs {
		ws = append(ws, h)
	}
	if _, err := io.Copy(io.MultiWriter(ws...), f); err != nil {
		return nil, fmt.Errorf("hashing object: %w", err)
	}
	out := map[string]string{}
	for alg, h := range hs {
		out[alg] = hex.EncodeToString(h.Sum(nil))
	}
	return out, nil
}

var errNoBlob = errors.New("no such blob")

// escapePath escapes each segment of a slash-separated key.
func escapePath(key string) string {
	segs := strings.Split(key, "/")
	for i, seg := range segs {
		segs[i] = url.PathEscape(seg)
	}
	return strings.Join(segs, "/")
}

func (s *Server) blob(key string) (*blobRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.blobs[key]
	if b == nil || !b.Uploaded {
		return nil, errNoBlob
	}
	return b, nil
}
