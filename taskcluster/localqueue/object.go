package localqueue

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"regexp"
	"time"
)

// The object service subset (references/object/v1/api.json) that artifact
// uploads with storageType "object" go through: createUpload,
// finishUpload, startDownload, object (metadata) and download.

var hashPatterns = map[string]*regexp.Regexp{
	"sha256": regexp.MustCompile(`^[a-z0-9]{64}$`),
	"sha512": regexp.MustCompile(`^[a-z0-9]{128}$`),
}

// maxInlineData is the largest dataInline upload (upload-method-data-inline.json).
const maxInlineData = 8192

// createUploadRequest is create-upload-request.json.
type createUploadRequest struct {
	ProjectID             string            `json:"projectId"`
	UploadID              string            `json:"uploadId"`
	Expires               time.Time         `json:"expires"`
	Hashes                map[string]string `json:"hashes"`
	ProposedUploadMethods struct {
		DataInline *struct {
			ContentType string `json:"contentType"`
			ObjectData  string `json:"objectData"`
		} `json:"dataInline"`
		PutURL *struct {
			ContentType   string `json:"contentType"`
			ContentLength *int64 `json:"contentLength"`
		} `json:"putUrl"`
	} `json:"proposedUploadMethods"`
}

// createUploadResponse is create-upload-response.json.
type createUploadResponse struct {
	ProjectID    string         `json:"projectId"`
	UploadID     string         `json:"uploadId"`
	Expires      time.Time      `json:"expires"`
	UploadMethod map[string]any `json:"uploadMethod"`
}

type putURLMethod struct {
	URL     string            `json:"url"`
	Expires time.Time         `json:"expires"`
	Headers map[string]string `json:"headers"`
}

func checkHashes(h map[string]string) error {
	for alg, v := range h {
		if p, ok := hashPatterns[alg]; ok && !p.MatchString(v) {
			return errInput("hash %s %q is malformed", alg, v)
		}
	}
	return nil
}

// mergeHashes adds new hashes to old; changing an existing one conflicts.
func mergeHashes(old, add map[string]string) (map[string]string, error) {
	out := map[string]string{}
	for k, v := range old {
		out[k] = v
	}
	for k, v := range add {
		if o, ok := out[k]; ok && o != v {
			return nil, errConflict("hash %s cannot be changed", k)
		}
		out[k] = v
	}
	return out, nil
}

func (s *Server) createUpload(name string, req createUploadRequest, base string) (createUploadResponse, error) {
	if !projectIDPattern.MatchString(req.ProjectID) || !slugIDPattern.MatchString(req.UploadID) {
		return createUploadResponse{}, errInput("projectId and uploadId are required and must match their patterns")
	}
	if err := checkHashes(req.Hashes); err != nil {
		return createUploadResponse{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return createUploadResponse{}, ErrClosed
	}
	expires := req.Expires.UTC()
	o := s.objects[name]
	if o == nil {
		o = &objectRecord{Name: name, ProjectID: req.ProjectID, UploadID: req.UploadID, Expires: expires, Blob: newBlobKey("objects", name)}
	} else {
		if o.UploadID != req.UploadID || o.ProjectID != req.ProjectID || !o.Expires.Equal(expires) {
			return createUploadResponse{}, errConflict("object %q exists with a different uploadId, projectId or expires", name)
		}
		if o.Finished {
			return createUploadResponse{}, errConflict("object %q upload is already finished", name)
		}
		c := *o
		o = &c
	}
	hashes, err := mergeHashes(o.Hashes, req.Hashes)
	if err != nil {
		return createUploadResponse{}, err
	}
	o.Hashes = hashes
	res := createUploadResponse{ProjectID: o.ProjectID, UploadID: o.UploadID, Expires: o.Expires, UploadMethod: map[string]any{}}
	var blobs []*blobRecord
	var blobData map[string][]byte
	switch m := req.ProposedUploadMethods; {
	case m.DataInline != nil:
		data, err := base64.StdEncoding.DecodeString(m.DataInline.ObjectData)
		if err != nil || len(data) > maxInlineData {
			return createUploadResponse{}, errInput("dataInline objectData must be base64 of at most %d bytes", maxInlineData)
		}
		blobs = append(blobs, &blobRecord{Key: o.Blob, ContentType: m.DataInline.ContentType, Size: int64(len(data)), Uploaded: true, Inline: true})
		blobData = map[string][]byte{o.Blob: data}
		res.UploadMethod["dataInline"] = true
	case m.PutURL != nil:
		if m.PutURL.ContentLength == nil || *m.PutURL.ContentLength < 0 {
			return createUploadResponse{}, errInput("putUrl needs contentLength")
		}
		exp := s.now().Add(putURLLifetime)
		res.UploadMethod["putUrl"] = putURLMethod{
			URL:     s.signedURL(base, "put", o.Blob, m.PutURL.ContentType, exp),
			Expires: exp,
			Headers: map[string]string{
				"Content-Type":   m.PutURL.ContentType,
				"Content-Length": fmt.Sprint(*m.PutURL.ContentLength),
			},
		}
	}
	if err := s.st.commit(write{objects: []*objectRecord{o}, blobs: blobs, blobData: blobData}); err != nil {
		return createUploadResponse{}, err
	}
	s.objects[name] = o
	for _, b := range blobs {
		s.blobs[b.Key] = b
	}
	return res, nil
}

// finishUploadRequest is finish-upload-request.json.
type finishUploadRequest struct {
	ProjectID string            `json:"projectId"`
	UploadID  string            `json:"uploadId"`
	Hashes    map[string]string `json:"hashes"`
}

// finishUpload marks an object's upload done. Unlike the real object
// service, which trusts clients, it checks the given hashes against the
// stored bytes and fails with ErrInput on a mismatch, so that tests catch
// workers computing them wrong.
func (s *Server) finishUpload(name string, req finishUploadRequest) error {
	if err := checkHashes(req.Hashes); err != nil {
		return err
	}
	s.mu.Lock()
	o := s.objects[name]
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	if o == nil {
		s.mu.Unlock()
		return errNotFound("object %q not found", name)
	}
	if o.UploadID != req.UploadID || o.ProjectID != req.ProjectID {
		s.mu.Unlock()
		return errConflict("uploadId or projectId does not match object %q", name)
	}
	hashes, err := mergeHashes(o.Hashes, req.Hashes)
	b := s.blobs[o.Blob]
	blob := o.Blob
	s.mu.Unlock()
	if err != nil {
		return err
	}
	if b == nil || !b.Uploaded {
		return errConflict("object %q has no uploaded data", name)
	}
	if len(hashes) == 0 {
		return errInput("at least one of sha256, sha512 is required")
	}
	got, err := s.blobHashes(blob, hashes)
	if err != nil {
		return err
	}
	for alg, v := range got {
		if hashes[alg] != v {
			return errInput("object %q: %s of the uploaded data is %s, not %s", name, alg, v, hashes[alg])
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	n := *s.objects[name]
	n.Hashes, n.Finished = hashes, true
	if err := s.st.commit(write{objects: []*objectRecord{&n}}); err != nil {
		return err
	}
	s.objects[name] = &n
	return nil
}

// object returns a finished object.
func (s *Server) object(name string) (objectRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.objects[name]
	if o == nil || !o.Finished {
		return objectRecord{}, errNotFound("object %q not found", name)
	}
	return *o, nil
}

// startDownload answers download-object-request.json: getUrl when
// accepted, else simple.
func (s *Server) startDownload(name string, body []byte, base string) (any, error) {
	var req struct {
		AcceptDownloadMethods map[string]json.RawMessage `json:"acceptDownloadMethods"`
	}
	if err := json.Unmarshal(body, &req); err != nil || req.AcceptDownloadMethods == nil {
		return nil, errInput("acceptDownloadMethods is required")
	}
	o, err := s.object(name)
	if err != nil {
		return nil, err
	}
	exp := s.now().Add(getURLLifetime)
	url := s.signedURL(base, "get", o.Blob, "", exp)
	if string(req.AcceptDownloadMethods["getUrl"]) == "true" {
		return map[string]any{"method": "getUrl", "url": url, "expires": exp, "hashes": o.Hashes}, nil
	}
	if string(req.AcceptDownloadMethods["simple"]) == "true" {
		return map[string]any{"method": "simple", "url": url}, nil
	}
	return nil, errInput("no supported download method proposed (getUrl, simple)")
}
