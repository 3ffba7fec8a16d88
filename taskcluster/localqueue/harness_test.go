package localqueue

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/workergen/workergen/taskcluster/hawk"
	"github.com/workergen/workergen/taskcluster/tcschema"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	testQueue       = "test-prov/test-wt"
	testWorkerGroup = "test-group"
	testWorkerID    = "test-worker"
)

// harness runs a Server with a fake clock behind a real HTTP server.
type harness struct {
	t       *testing.T
	mu      sync.Mutex
	dir     string
	clock   *FakeClock
	opts    Options
	s       *Server
	srv     *httptest.Server
	schemas *tcschema.Set
	admin   *tcClient
	worker  *tcClient
}

var t0 = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

func newHarness(t *testing.T, mod ...func(*Options)) *harness {
	t.Helper()
	h := &harness{t: t, dir: t.TempDir(), clock: NewFakeClock(t0), schemas: tcschema.ForTest(t)}
	h.opts = Options{
		Clients: []Client{
			{ClientID: "admin", AccessToken: "admin-token", Scopes: []string{"*"}},
			{ClientID: "worker", AccessToken: "worker-token", Scopes: []string{"queue:claim-work:" + testQueue, "queue:worker-id:" + testWorkerGroup + "/*"}},
			{ClientID: "nobody", AccessToken: "nobody-token", Scopes: []string{}},
		},
		ClaimTimeout:   20 * time.Minute,
		LongPoll:       50 * time.Millisecond,
		ExpireInterval: -1,
		NoSync:         true,
		Logger:         slog.New(slog.DiscardHandler),
	}
	for _, m := range mod {
		m(&h.opts)
	}
	h.start()
	h.admin = h.client("admin", "admin-token", "")
	h.worker = h.client("worker", "worker-token", "")
	t.Cleanup(h.stop)
	return h
}

func (h *harness) start() {
	h.t.Helper()
	o := h.opts
	o.Dir, o.Clock = h.dir, h.clock
	s, err := New(o)
	if err != nil {
		h.t.Fatalf("New: %v", err)
	}
	h.mu.Lock()
	h.s = s
	h.mu.Unlock()
	if h.srv == nil {
		// One HTTP server for the harness's life, so URLs handed out stay
		// valid across restarts; it serves whichever Server is current.
		h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h.mu.Lock()
			cur := h.s
			h.mu.Unlock()
			if cur == nil {
				http.Error(w, "restarting", http.StatusServiceUnavailable)
				return
			}
			cur.Handler().ServeHTTP(w, r)
		}))
	}
}

func (h *harness) stop() {
	h.stopServer()
	if h.srv != nil {
		h.srv.Close()
		h.srv = nil
	}
}

func (h *harness) stopServer() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.s != nil {
		if err := h.s.Close(); err != nil {
			h.t.Errorf("Close: %v", err)
		}
		h.s = nil
	}
}

// restart stops the Server and starts a new one on the same directory,
// behind the same URL.
func (h *harness) restart() {
	h.stopServer()
	h.start()
}

// tcClient is a minimal Hawk-signing Taskcluster client (signing with the
// harness clock), which does not follow redirects.
type tcClient struct {
	h     *harness
	creds hawk.Credentials
}

func (h *harness) client(id, token, cert string) *tcClient {
	return &tcClient{h: h, creds: hawk.Credentials{ClientID: id, AccessToken: token, Certificate: cert}}
}

func (h *harness) clientFor(c Credentials) *tcClient {
	return h.client(c.ClientID, c.AccessToken, c.Certificate)
}

var noRedirect = &http.Client{
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	Timeout:       60 * time.Second,
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decoding %s: %v", r.body, err)
	}
}

// do sends a signed API request to <rootUrl>/api/<service>/v1<path>. A nil
// client sends it unauthenticated.
func (c *tcClient) do(method, service, path string, body any) response {
	h := c.h
	h.t.Helper()
	u, err := url.Parse(h.srv.URL + "/api/" + service + "/v1" + path)
	if err != nil {
		h.t.Fatal(err)
	}
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			h.t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, u.String(), rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c != nil && c.creds.ClientID != "" {
		auth, err := hawk.SignHeader(c.creds, hawk.RequestFromURL(method, req.URL), h.clock.Now(), "")
		if err != nil {
			h.t.Fatal(err)
		}
		req.Header.Set("Authorization", auth)
	}
	return h.send(req)
}

func (h *harness) send(req *http.Request) response {
	h.t.Helper()
	resp, err := noRedirect.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer func() { _ = resp.Body.Close() }()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: data}
}

// call sends a request that must answer want, validating the request body
// against reqSchema and a 200 response against respSchema ("" skips).
func (c *tcClient) call(method, service, path string, body any, reqSchema, respSchema string, want int) response {
	h := c.h
	h.t.Helper()
	if reqSchema != "" {
		if err := h.schemas.ValidateValue(reqSchema, body); err != nil {
			h.t.Fatalf("request of %s %s: %v", method, path, err)
		}
	}
	r := c.do(method, service, path, body)
	if r.status != want {
		h.t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.status, want, r.body)
	}
	if respSchema != "" && r.status < 300 {
		if err := h.schemas.Validate(respSchema, r.body); err != nil {
			h.t.Fatalf("response of %s %s: %v\n%s", method, path, err, r.body)
		}
	}
	if r.status >= 400 {
		var e struct{ Code, Message string }
		if json.Unmarshal(r.body, &e) != nil || e.Code == "" || e.Message == "" {
			if r.status != http.StatusFailedDependency {
				h.t.Fatalf("%s %s: error body without code and message: %s", method, path, r.body)
			}
		}
	}
	return r
}

// taskDef returns a valid task definition on testQueue.
func (h *harness) taskDef(mod func(map[string]any)) map[string]any {
	now := h.clock.Now()
	d := map[string]any{
		"taskQueueId": testQueue,
		"created":     now.Format(time.RFC3339Nano),
		"deadline":    now.Add(24 * time.Hour).Format(time.RFC3339Nano),
		"retries":     2,
		"payload":     map[string]any{"command": []any{[]any{"true"}}, "maxRunTime": 60},
		"metadata": map[string]any{
			"name": "test task", "description": "a test", "owner": "test@example.com",
			"source": "https://example.com/test",
		},
		"scopes": []string{"secrets:get:project/x"},
	}
	if mod != nil {
		mod(d)
	}
	return d
}

// createTask creates a task over HTTP as admin and returns its id.
func (h *harness) createTask(mod func(map[string]any)) string {
	h.t.Helper()
	id := NewTaskID()
	h.admin.call("PUT", "queue", "/task/"+id, h.taskDef(mod), "queue/v1/create-task-request.json", "queue/v1/task-status-response.json", 200)
	return id
}

// claim claims one task with the worker client and returns the claim.
func (h *harness) claim() ClaimedTask {
	h.t.Helper()
	claims := h.claimN(1)
	if len(claims) != 1 {
		h.t.Fatalf("claimed %d tasks, want 1", len(claims))
	}
	return claims[0]
}

func (h *harness) claimN(n int) []ClaimedTask {
	h.t.Helper()
	body := map[string]any{"tasks": n, "workerGroup": testWorkerGroup, "workerId": testWorkerID}
	r := h.worker.call("POST", "queue", "/claim-work/"+url.PathEscape(testQueue), body, "queue/v1/claim-work-request.json", "queue/v1/claim-work-response.json", 200)
	var res struct{ Tasks []ClaimedTask }
	r.decode(h.t, &res)
	return res.Tasks
}

func (h *harness) status(taskID string) TaskStatus {
	h.t.Helper()
	st, err := h.s.Status(taskID)
	if err != nil {
		h.t.Fatalf("Status(%s): %v", taskID, err)
	}
	return st
}

// runStates summarises a status as "state/reasonCreated/reasonResolved" per run.
func runStates(st TaskStatus) string {
	var parts []string
	for _, r := range st.Runs {
		parts = append(parts, r.State+"/"+r.ReasonCreated+"/"+r.ReasonResolved)
	}
	return strings.Join(parts, " ")
}

func runPath(taskID string, runID int, rest string) string {
	return "/task/" + taskID + "/runs/" + itoa(runID) + rest
}

// escapeName escapes an artifact name as a path, keeping slashes.
func escapeName(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}

// put uploads data to a putUrl.
func (h *harness) put(putURL, contentType string, data []byte) response {
	h.t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), "PUT", putURL, bytes.NewReader(data))
	if err != nil {
		h.t.Fatal(err)
	}
	req.ContentLength = int64(len(data))
	if len(data) == 0 {
		req.Body = http.NoBody
	}
	req.Header.Set("Content-Type", contentType)
	return h.send(req)
}

// get fetches a URL without authentication.
func (h *harness) get(u string) response {
	h.t.Helper()
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	return h.send(req)
}
