package localqueue

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// running creates a task, claims it and returns its id and a client with
// the run's credentials.
func (h *harness) running(mod func(map[string]any)) (string, *tcClient) {
	h.t.Helper()
	id := h.createTask(mod)
	c := h.claim()
	if c.Status.TaskID != id {
		h.t.Fatalf("claimed %s, want %s", c.Status.TaskID, id)
	}
	return id, h.clientFor(c.Credentials)
}

func (h *harness) createArtifact(tc *tcClient, id string, runID int, name string, body map[string]any, want int) response {
	h.t.Helper()
	schema := ""
	if want == 200 {
		schema = "queue/v1/post-artifact-response.json"
	}
	return tc.call("POST", "queue", runPath(id, runID, "/artifacts/"+escapeName(name)), body, "queue/v1/post-artifact-request.json", schema, want)
}

func TestCreateArtifactRules(t *testing.T) {
	h := newHarness(t)
	id, tc := h.running(nil)
	exp := h.clock.Now().Add(time.Hour)
	s3 := func(ct string, e time.Time) map[string]any {
		return map[string]any{"storageType": "s3", "contentType": ct, "expires": e.Format(time.RFC3339)}
	}
	h.createArtifact(tc, id, 0, "public/a.txt", s3("text/plain", exp), 200)
	h.createArtifact(tc, id, 0, "public/a.txt", s3("text/plain", exp), 200)                      // same again
	h.createArtifact(tc, id, 0, "public/a.txt", s3("text/plain", exp.Add(time.Hour)), 200)       // later expiry
	h.createArtifact(tc, id, 0, "public/a.txt", s3("text/plain", exp), 409)                      // shorter expiry
	h.createArtifact(tc, id, 0, "public/a.txt", s3("application/json", exp.Add(time.Hour)), 409) // other type
	errArt := map[string]any{"storageType": "error", "expires": exp.Format(time.RFC3339), "reason": "file-missing-on-worker", "message": "x"}
	h.createArtifact(tc, id, 0, "public/a.txt", errArt, 409) // other storage type
	h.createArtifact(tc, id, 0, "public/e", errArt, 200)
	errArt["message"] = "y"
	h.createArtifact(tc, id, 0, "public/e", errArt, 409) // other details
	// Expiry bounds: not after the task's expires, not in the past.
	taskExpires := h.status(id).Expires
	h.createArtifact(tc, id, 0, "public/late", s3("text/plain", taskExpires.Add(time.Second)), 400)
	h.createArtifact(tc, id, 0, "public/past", s3("text/plain", h.clock.Now().Add(-time.Hour)), 400)
	// Names are printable ASCII.
	h.createArtifact(tc, id, 0, "public/caf\u00e9.txt", s3("text/plain", exp), 400)
	// Unknown run or task: 400 as upstream.
	h.createArtifact(tc, id, 3, "public/x", s3("text/plain", exp), 400)
	h.createArtifact(h.admin, NewTaskID(), 0, "public/x", s3("text/plain", exp), 400)
	// Bad requests.
	h.admin.call("POST", "queue", runPath(id, 0, "/artifacts/public/bad"), map[string]any{"storageType": "s3", "expires": exp}, "", "", 400)
	h.admin.call("POST", "queue", runPath(id, 0, "/artifacts/public/bad"), map[string]any{"storageType": "ftp", "expires": exp, "contentType": "a"}, "", "", 400)
	// Reference to link is the one storage-type change allowed.
	ref := map[string]any{"storageType": "reference", "contentType": "text/plain", "expires": exp.Format(time.RFC3339), "url": "https://example.com/a"}
	h.createArtifact(tc, id, 0, "public/logs/live.log", ref, 200)
	ref["url"] = "https://example.com/b"
	h.createArtifact(tc, id, 0, "public/logs/live.log", ref, 200)
	link := map[string]any{"storageType": "link", "expires": exp.Format(time.RFC3339), "artifact": "public/a.txt"}
	h.createArtifact(tc, id, 0, "public/logs/live.log", link, 200)
	h.createArtifact(tc, id, 0, "public/logs/live.log", ref, 409)

	// After completion: 409.
	tc.call("POST", "queue", runPath(id, 0, "/completed"), nil, "", "", 200)
	h.createArtifact(tc, id, 0, "public/after", s3("text/plain", exp), 409)

	// After an exception: allowed for 25 minutes.
	id2, tc2 := h.running(nil)
	tc2.call("POST", "queue", runPath(id2, 0, "/exception"), map[string]any{"reason": "internal-error"}, "", "", 200)
	h.clock.Advance(24 * time.Minute)
	h.createArtifact(tc2, id2, 0, "public/logs/live_backing.log", s3("text/plain", exp), 200)
	h.clock.Advance(2 * time.Minute)
	// The run's credentials expired with the claim: use an admin client.
	h.createArtifact(h.admin, id2, 0, "public/late.log", s3("text/plain", exp), 409)
}

func TestS3Uploads(t *testing.T) {
	h := newHarness(t)
	id, tc := h.running(nil)
	exp := h.clock.Now().Add(time.Hour).Format(time.RFC3339)
	for _, tcase := range []struct {
		name string
		data []byte
	}{
		{"public/empty.txt", []byte{}},
		{"public/dir/name with spaces+plus.txt", []byte("spaces and plus")},
		{"private/secret.bin", bytes.Repeat([]byte{0, 1, 2, 255}, 1<<16)},
	} {
		r := h.createArtifact(tc, id, 0, tcase.name, map[string]any{"storageType": "s3", "contentType": "application/octet-stream", "expires": exp, "contentLength": len(tcase.data)}, 200)
		var res struct{ PutURL string }
		r.decode(t, &res)
		if pr := h.put(res.PutURL, "application/octet-stream", tcase.data); pr.status != 200 {
			t.Fatalf("%s: PUT %d %s", tcase.name, pr.status, pr.body)
		}
		// Fetch through getArtifact: private ones need scopes.
		path := runPath(id, 0, "/artifacts/"+escapeName(tcase.name))
		client := &tcClient{h: h}
		if strings.HasPrefix(tcase.name, "private/") {
			client.do("GET", "queue", path, nil)
			if r := client.do("GET", "queue", path, nil); r.status != 403 {
				t.Fatalf("anonymous private artifact: %d", r.status)
			}
			client = h.admin
		}
		r = client.do("GET", "queue", path, nil)
		if r.status != 303 {
			t.Fatalf("%s: getArtifact %d %s", tcase.name, r.status, r.body)
		}
		got := h.get(r.header.Get("Location"))
		if got.status != 200 || !bytes.Equal(got.body, tcase.data) {
			t.Fatalf("%s: download %d, %d bytes, want %d", tcase.name, got.status, len(got.body), len(tcase.data))
		}
	}
	arts, err := h.s.Artifacts(id, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(arts) != 3 || arts[0].Name != "private/secret.bin" || arts[1].Name != "public/dir/name with spaces+plus.txt" ||
		string(arts[1].Content) != "spaces and plus" || !arts[2].Uploaded || len(arts[2].Content) != 0 {
		t.Fatalf("Artifacts: %d %v", len(arts), arts)
	}
	if p, err := h.s.ArtifactPath(id, 0, "public/dir/name with spaces+plus.txt"); err != nil || !strings.HasPrefix(p, h.dir) {
		t.Fatalf("ArtifactPath: %q %v", p, err)
	}

	// Content-Encoding is kept and replayed; downloads honour Range.
	r := h.createArtifact(tc, id, 0, "public/enc.txt.gz", map[string]any{"storageType": "s3", "contentType": "text/plain", "expires": exp}, 200)
	var enc struct{ PutURL string }
	r.decode(t, &enc)
	req, _ := http.NewRequest("PUT", enc.PutURL, strings.NewReader("0123456789"))
	req.Header.Set("Content-Type", "text/plain")
	req.Header.Set("Content-Encoding", "gzip")
	if pr := h.send(req); pr.status != 200 {
		t.Fatalf("PUT with encoding: %d", pr.status)
	}
	r = h.admin.do("GET", "queue", runPath(id, 0, "/artifacts/public/enc.txt.gz"), nil)
	req, _ = http.NewRequest("GET", r.header.Get("Location"), nil)
	req.Header.Set("Range", "bytes=2-4")
	req.Header.Set("Accept-Encoding", "gzip") // keep the transport from decoding
	if got := h.send(req); got.status != http.StatusPartialContent || string(got.body) != "234" || got.header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("range download: %d %q %q", got.status, got.body, got.header.Get("Content-Encoding"))
	}

	// PUT rules: Content-Length required, Content-Type as signed, signature.
	r = h.createArtifact(tc, id, 0, "public/rules", map[string]any{"storageType": "s3", "contentType": "text/plain", "expires": exp}, 200)
	var res struct{ PutURL string }
	r.decode(t, &res)
	if pr := h.put(res.PutURL, "text/html", []byte("x")); pr.status != 403 {
		t.Fatalf("wrong content type: %d", pr.status)
	}
	if pr := h.put(strings.Replace(res.PutURL, "signature=", "signature=0", 1), "text/plain", []byte("x")); pr.status != 403 {
		t.Fatalf("bad signature: %d", pr.status)
	}
	req, _ = http.NewRequest("PUT", res.PutURL, strings.NewReader("chunked"))
	req.ContentLength = -1 // forces chunked encoding, no Content-Length
	req.Header.Set("Content-Type", "text/plain")
	if pr := h.send(req); pr.status != http.StatusLengthRequired {
		t.Fatalf("no Content-Length: %d", pr.status)
	}
	// Uploading to a signed URL after it expired fails.
	h.clock.Advance(46 * time.Minute)
	if pr := h.put(res.PutURL, "text/plain", []byte("x")); pr.status != 403 {
		t.Fatalf("expired put URL: %d", pr.status)
	}
}

func TestObjectArtifact(t *testing.T) {
	h := newHarness(t)
	id, tc := h.running(nil)
	exp := h.clock.Now().Add(time.Hour)
	data := bytes.Repeat([]byte("object data "), 1000)
	r := h.createArtifact(tc, id, 0, "public/build/target.tar.gz", map[string]any{
		"storageType": "object", "contentType": "application/gzip", "expires": exp.Format(time.RFC3339), "contentLength": len(data),
	}, 200)
	var obj struct {
		Name, ProjectID, UploadID string
		Expires                   time.Time
		Credentials               Credentials
	}
	r.decode(t, &obj)
	if obj.Name != "t/"+id+"/0/public/build/target.tar.gz" || obj.ProjectID != "none" || !strings.HasPrefix(obj.Credentials.ClientID, "artifact-upload/"+id+"/0/on/") {
		t.Fatalf("object artifact response: %s", r.body)
	}
	oc := h.clientFor(obj.Credentials)
	upload := map[string]any{
		"projectId": obj.ProjectID, "uploadId": obj.UploadID, "expires": obj.Expires,
		"proposedUploadMethods": map[string]any{"putUrl": map[string]any{"contentType": "application/gzip", "contentLength": len(data)}},
	}
	// The task credentials cannot upload objects; the object credentials can.
	tc.call("PUT", "object", "/upload/"+escapeName(obj.Name), upload, "", "", 403)
	r = oc.call("PUT", "object", "/upload/"+escapeName(obj.Name), upload, "object/v1/create-upload-request.json", "object/v1/create-upload-response.json", 200)
	var cu struct {
		UploadMethod struct {
			PutURL struct {
				URL     string
				Headers map[string]string
			}
		}
	}
	r.decode(t, &cu)
	if cu.UploadMethod.PutURL.URL == "" || cu.UploadMethod.PutURL.Headers["Content-Type"] != "application/gzip" {
		t.Fatalf("createUpload: %s", r.body)
	}
	// Another uploadId for the same object conflicts.
	other := map[string]any{"projectId": obj.ProjectID, "uploadId": NewTaskID(), "expires": obj.Expires, "proposedUploadMethods": map[string]any{}}
	oc.call("PUT", "object", "/upload/"+escapeName(obj.Name), other, "", "", 409)

	if pr := h.put(cu.UploadMethod.PutURL.URL, "application/gzip", data); pr.status != 200 {
		t.Fatalf("PUT: %d %s", pr.status, pr.body)
	}
	// Finishing the artifact before the upload is finished fails, and so
	// does reporting the run completed.
	tc.call("PUT", "queue", runPath(id, 0, "/artifacts/public/build/target.tar.gz"), map[string]any{"uploadId": obj.UploadID}, "queue/v1/finish-artifact-request.json", "", 400)
	tc.call("POST", "queue", runPath(id, 0, "/completed"), nil, "", "", 409)
	// Wrong hashes are refused.
	s256 := sha256.Sum256(data)
	s512 := sha512.Sum512(data)
	bad := map[string]any{"projectId": obj.ProjectID, "uploadId": obj.UploadID, "hashes": map[string]string{"sha256": strings.Repeat("0", 64)}}
	oc.call("POST", "object", "/finish-upload/"+escapeName(obj.Name), bad, "object/v1/finish-upload-request.json", "", 400)
	finish := map[string]any{"projectId": obj.ProjectID, "uploadId": obj.UploadID,
		"hashes": map[string]string{"sha256": hex.EncodeToString(s256[:]), "sha512": hex.EncodeToString(s512[:])}}
	oc.call("POST", "object", "/finish-upload/"+escapeName(obj.Name), finish, "object/v1/finish-upload-request.json", "", 200)
	tc.call("PUT", "queue", runPath(id, 0, "/artifacts/public/build/target.tar.gz"), map[string]any{"uploadId": NewTaskID()}, "", "", 400)
	if r := tc.call("PUT", "queue", runPath(id, 0, "/artifacts/public/build/target.tar.gz"), map[string]any{"uploadId": obj.UploadID}, "", "", 204); len(r.body) != 0 {
		t.Fatalf("finishArtifact body %q", r.body)
	}
	tc.call("PUT", "queue", runPath(id, 0, "/artifacts/public/build/target.tar.gz"), map[string]any{"uploadId": obj.UploadID}, "", "", 204)
	tc.call("POST", "queue", runPath(id, 0, "/completed"), nil, "", "", 200)

	// Download through the queue (303 to the bytes) and the object service.
	r = (&tcClient{h: h}).do("GET", "queue", runPath(id, 0, "/artifacts/public/build/target.tar.gz"), nil)
	if r.status != 303 || r.header.Get("x-taskcluster-artifact-storage-type") != "object" {
		t.Fatalf("getArtifact: %d %s", r.status, r.body)
	}
	if got := h.get(r.header.Get("Location")); !bytes.Equal(got.body, data) || got.header.Get("Content-Type") != "application/gzip" {
		t.Fatalf("download: %d bytes, type %q", len(got.body), got.header.Get("Content-Type"))
	}
	r = h.admin.call("PUT", "object", "/start-download/"+escapeName(obj.Name), map[string]any{"acceptDownloadMethods": map[string]any{"getUrl": true}},
		"object/v1/download-object-request.json", "object/v1/download-object-response.json", 200)
	var dl struct {
		URL    string
		Hashes map[string]string
	}
	r.decode(t, &dl)
	if dl.Hashes["sha256"] != hex.EncodeToString(s256[:]) {
		t.Fatalf("startDownload: %s", r.body)
	}
	if got := h.get(dl.URL); !bytes.Equal(got.body, data) {
		t.Fatal("getUrl download differs")
	}
	h.admin.call("GET", "object", "/metadata/"+escapeName(obj.Name), nil, "", "object/v1/get-object-response.json", 200)
	if r := h.admin.do("GET", "object", "/download/"+escapeName(obj.Name), nil); r.status != 303 {
		t.Fatalf("object download: %d", r.status)
	}
	// artifact (artifact-content) gives the object name and download
	// credentials, which start a download at the object service.
	r = (&tcClient{h: h}).call("GET", "queue", runPath(id, 0, "/artifact-content/public/build/target.tar.gz"), nil, "", "queue/v1/artifact-content-response.json", 200)
	var content struct {
		Name        string
		Credentials Credentials
	}
	r.decode(t, &content)
	h.clientFor(content.Credentials).call("PUT", "object", "/start-download/"+escapeName(content.Name), map[string]any{"acceptDownloadMethods": map[string]any{"simple": true}},
		"object/v1/download-object-request.json", "object/v1/download-object-response.json", 200)
	h.clientFor(content.Credentials).call("PUT", "object", "/start-download/"+escapeName(obj.Name+"x"), map[string]any{"acceptDownloadMethods": map[string]any{"simple": true}}, "", "", 403)
	arts, err := h.s.Artifacts(id, 0)
	if err != nil || len(arts) != 1 || !bytes.Equal(arts[0].Content, data) || !arts[0].Present {
		t.Fatalf("Artifacts: %v %v", arts, err)
	}

	// Small objects upload inline.
	id2, tc2 := h.running(nil)
	r = h.createArtifact(tc2, id2, 0, "public/small.json", map[string]any{"storageType": "object", "contentType": "application/json", "expires": exp.Format(time.RFC3339)}, 200)
	r.decode(t, &obj)
	small := []byte(`{"ok":true}`)
	inline := map[string]any{"projectId": obj.ProjectID, "uploadId": obj.UploadID, "expires": obj.Expires,
		"proposedUploadMethods": map[string]any{"dataInline": map[string]any{"contentType": "application/json", "objectData": base64.StdEncoding.EncodeToString(small)}}}
	oc = h.clientFor(obj.Credentials)
	oc.call("PUT", "object", "/upload/"+escapeName(obj.Name), inline, "object/v1/create-upload-request.json", "object/v1/create-upload-response.json", 200)
	sum := sha256.Sum256(small)
	oc.call("POST", "object", "/finish-upload/"+escapeName(obj.Name), map[string]any{"projectId": obj.ProjectID, "uploadId": obj.UploadID,
		"hashes": map[string]string{"sha256": hex.EncodeToString(sum[:])}}, "", "", 200)
	tc2.call("PUT", "queue", runPath(id2, 0, "/artifacts/public/small.json"), map[string]any{"uploadId": obj.UploadID}, "", "", 204)
	if arts, err := h.s.Artifacts(id2, 0); err != nil || string(arts[0].Content) != string(small) {
		t.Fatalf("inline object: %v %v", arts, err)
	}
}

func TestArtifactLinks(t *testing.T) {
	h := newHarness(t)
	id, tc := h.running(nil)
	exp := h.clock.Now().Add(time.Hour).Format(time.RFC3339)
	link := func(name, target string) {
		h.createArtifact(tc, id, 0, name, map[string]any{"storageType": "link", "expires": exp, "artifact": target}, 200)
	}
	link("public/a", "public/b")
	link("public/b", "public/a")
	link("public/to-private", "private/x")
	h.createArtifact(tc, id, 0, "private/x", map[string]any{"storageType": "reference", "contentType": "text/plain", "expires": exp, "url": "https://example.com/x"}, 200)
	anon := &tcClient{h: h}
	if r := anon.do("GET", "queue", runPath(id, 0, "/artifacts/public/a"), nil); r.status != 400 {
		t.Fatalf("link cycle: %d %s", r.status, r.body)
	}
	// Following a link checks the scopes of the target too.
	if r := anon.do("GET", "queue", runPath(id, 0, "/artifacts/public/to-private"), nil); r.status != 403 {
		t.Fatalf("link to private: %d %s", r.status, r.body)
	}
	if r := h.admin.do("GET", "queue", runPath(id, 0, "/artifacts/public/to-private"), nil); r.status != 303 || r.header.Get("Location") != "https://example.com/x" {
		t.Fatalf("link to private as admin: %d %s", r.status, r.body)
	}
}

// TestBlobKeys: one directory per prefix and one file name per blob, safe
// for a file system and at most 240 bytes, distinct for names that are
// prefixes of each other.
func TestBlobKeys(t *testing.T) {
	cases := []struct{ name, want string }{
		{"0/public/logs/live_backing.log", `^T/[0-9a-f]{8}-0~public~logs~live_backing\.log$`},
		{"0/../a:b/./c", `^T/[0-9a-f]{8}-0~_\.\.~a_b~_\.~c$`},
		{"", `^T/[0-9a-f]{8}-data$`},
		{"0/" + strings.Repeat("é", 300), `^T/[0-9a-f]{8}-0~é+$`},
	}
	for _, c := range cases {
		k := newBlobKey("T", c.name)
		if !regexp.MustCompile(c.want).MatchString(k) || len(k)-len("T/") > 240 || !utf8.ValidString(k) {
			t.Errorf("newBlobKey(%q) = %q, want %s (file name at most 240 bytes)", c.name, k, c.want)
		}
	}
	if a, b := newBlobKey("T", "0/public/a"), newBlobKey("T", "0/public/a/b"); path.Dir(a) != "T" || path.Dir(b) != "T" || strings.HasPrefix(b, a+"/") {
		t.Errorf("keys %q and %q: want two files in T", a, b)
	}
}

// TestSmallBlobsInline: an upload of at most inlineBlobMax bytes creates
// no file (its bytes are in queue.db), a larger one does; both read back
// after a restart; a smaller upload to the same URL replaces a file's
// bytes; ArtifactPath writes inline bytes out for its caller.
func TestSmallBlobsInline(t *testing.T) {
	h := newHarness(t)
	id, tc := h.running(nil)
	exp := h.clock.Now().Add(time.Hour).Format(time.RFC3339)
	upload := func(name string, data []byte) string {
		r := h.createArtifact(tc, id, 0, name, map[string]any{"storageType": "s3", "contentType": "application/octet-stream", "expires": exp}, 200)
		var res struct{ PutURL string }
		r.decode(t, &res)
		if pr := h.put(res.PutURL, "application/octet-stream", data); pr.status != 200 {
			t.Fatalf("PUT %s: %d %s", name, pr.status, pr.body)
		}
		return res.PutURL
	}
	files := func() (n int) {
		_ = filepath.WalkDir(filepath.Join(h.dir, "blobs"), func(_ string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				n++
			}
			return nil
		})
		return n
	}
	small := bytes.Repeat([]byte("s"), inlineBlobMax)
	large := bytes.Repeat([]byte("L"), inlineBlobMax+1)
	upload("public/small", small)
	if n := files(); n != 0 {
		t.Fatalf("a %d-byte upload made %d files", len(small), n)
	}
	putURL := upload("public/large", large)
	if n := files(); n != 1 {
		t.Fatalf("a %d-byte upload made %d files, want 1", len(large), n)
	}
	h.restart()
	read := func(name string) []byte {
		r := h.admin.do("GET", "queue", runPath(id, 0, "/artifacts/"+name), nil)
		got := h.get(r.header.Get("Location"))
		if got.status != 200 {
			t.Fatalf("download %s: %d %s", name, got.status, got.body)
		}
		return got.body
	}
	if !bytes.Equal(read("public/small"), small) || !bytes.Equal(read("public/large"), large) {
		t.Fatal("bytes changed across a restart")
	}
	if pr := h.put(putURL, "application/octet-stream", []byte("now small")); pr.status != 200 {
		t.Fatalf("PUT again: %d", pr.status)
	}
	if got := read("public/large"); string(got) != "now small" || files() != 0 {
		t.Fatalf("after a smaller upload to the same URL: %q, %d files", got, files())
	}
	p, err := h.s.ArtifactPath(id, 0, "public/small")
	if err != nil {
		t.Fatal(err)
	}
	if data, err := os.ReadFile(p); err != nil || !bytes.Equal(data, small) {
		t.Fatalf("ArtifactPath %s: %d bytes, %v", p, len(data), err)
	}
	// Written out as private as an uploaded file (artifacts need not be
	// public).
	upload("private/large", large)
	pl, err := h.s.ArtifactPath(id, 0, "private/large")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{p, pl} {
		if fi, err := os.Stat(f); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: mode %v, %v; want 0600", f, fi.Mode(), err)
		}
	}
}
