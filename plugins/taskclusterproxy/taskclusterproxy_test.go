package taskclusterproxy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/engines/mock"
	"github.com/workergen/workergen/plugins"
	"github.com/workergen/workergen/task"
	"github.com/workergen/workergen/taskcluster/hawk"
)

// deployment is a fake Taskcluster deployment that checks Hawk signatures
// (clients "task-1" and "task-2") and echoes what it got.
type deployment struct {
	srv   *httptest.Server
	auth  *hawk.Authenticator
	flaky atomic.Int32 // answers 500 while positive, counting down
	mu    sync.Mutex
	seen  []string // clientId per authenticated request
}

func newDeployment(t testing.TB) *deployment {
	d := &deployment{}
	d.auth = &hawk.Authenticator{Lookup: func(_ context.Context, id string) (hawk.Client, error) {
		switch id {
		case "task-1":
			return hawk.Client{AccessToken: "token-1", Scopes: []string{"queue:*"}}, nil
		case "task-2":
			return hawk.Client{AccessToken: "token-2", Scopes: []string{"queue:*"}}, nil
		}
		return hawk.Client{}, hawk.ErrUnknownClient
	}}
	d.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/queue/v1/open" { // for BenchmarkDirectRequest
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"clientId": "anonymous"}`)
			return
		}
		id, err := d.auth.Authenticate(r.Context(), r)
		if err != nil {
			w.WriteHeader(http.StatusUnauthorized)
			_ = json.NewEncoder(w).Encode(map[string]string{"code": "AuthenticationFailed", "message": err.Error()})
			return
		}
		d.mu.Lock()
		d.seen = append(d.seen, id.ClientID)
		d.mu.Unlock()
		switch r.URL.Path {
		case "/api/queue/v1/redirect":
			http.Redirect(w, r, "https://storage.example.com/blob", http.StatusSeeOther)
			return
		case "/api/queue/v1/flaky":
			if d.flaky.Add(-1) >= 0 {
				http.Error(w, `{"code": "InternalServerError", "message": "try again"}`, http.StatusInternalServerError)
				return
			}
		case "/api/queue/v1/down":
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `{"code": "ServiceUnavailable", "message": "down for a test"}`)
			return
		}
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Echo", "1")
		_ = json.NewEncoder(w).Encode(map[string]string{
			"clientId": id.ClientID, "method": r.Method, "path": r.URL.EscapedPath(), "query": r.URL.RawQuery,
			"contentType": r.Header.Get("Content-Type"), "custom": r.Header.Get("X-Custom"), "body": string(body),
		})
	}))
	t.Cleanup(d.srv.Close)
	return d
}

// run is one task run with the proxy feature, its plugin prepared and its
// sandbox built.
type run struct {
	t     testing.TB
	tp    plugins.TaskPlugin
	url   string // TASKCLUSTER_PROXY_URL
	creds atomic.Pointer[task.Credentials]
	log   bytes.Buffer
}

func startRun(t testing.TB, rootURL string, payload string) *run {
	t.Helper()
	return startRunAs(t, rootURL, payload, nil)
}

// startRunAs is startRun for a run whose engine made task user u (nil:
// none).
func startRunAs(t testing.TB, rootURL string, payload string, u *task.User) *run {
	t.Helper()
	p, err := New(plugins.Options{Config: json.RawMessage(`{"maxRequestBody": 1000}`)})
	require.NoError(t, err)
	p.(*plugin).retryInitial, p.(*plugin).retryMaxElapsed = time.Millisecond, 2*time.Second
	r := &run{t: t}
	r.creds.Store(&task.Credentials{ClientID: "task-1", AccessToken: "token-1"})
	tc := &task.Context{TaskID: "fUAZlAb5QHCqJr2hH0Ly7w", Worker: task.WorkerInfo{RootURL: rootURL}, Log: task.NewLog(&r.log),
		Definition:  task.Definition{Payload: json.RawMessage(payload)},
		Credentials: func() *task.Credentials { return r.creds.Load() }}
	if u != nil {
		tc.SetValue(task.UserKey{}, u)
	}
	ctx := context.Background()
	r.tp, err = p.NewTaskPlugin(ctx, tc)
	require.NoError(t, err)
	eng, err := mock.New(engines.Options{})
	require.NoError(t, err)
	b, err := eng.NewSandboxBuilder(ctx, tc)
	require.NoError(t, err)
	require.NoError(t, r.tp.Prepare(ctx))
	require.NoError(t, r.tp.BuildSandbox(ctx, b))
	r.url = b.(*mock.SandboxBuilder).Env()[EnvProxyURL]
	t.Cleanup(func() { _ = r.tp.Dispose(ctx) })
	return r
}

const proxyOn = `{"features": {"taskclusterProxy": true}}`

// do sends a request to the proxy and returns the answer with its body.
func (r *run) do(method, path, body string, header http.Header) (*http.Response, string) {
	r.t.Helper()
	req, err := http.NewRequest(method, r.url+path, strings.NewReader(body))
	require.NoError(r.t, err)
	for k, v := range header {
		req.Header[k] = v
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	require.NoError(r.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(r.t, err)
	return resp, string(b)
}

func echo(t *testing.T, body string) map[string]string {
	t.Helper()
	var m map[string]string
	require.NoError(t, json.Unmarshal([]byte(body), &m), body)
	return m
}

func TestProxySignsWithTheTaskCredentials(t *testing.T) {
	d := newDeployment(t)
	r := startRun(t, d.srv.URL, proxyOn)
	require.True(t, strings.HasPrefix(r.url, "http://127.0.0.1:"), r.url)
	assert.Contains(t, r.log.String(), "[taskcluster-proxy] serving at "+r.url)

	// The rootUrl form, with a query, a body without Content-Type, a
	// header of the task's and an Authorization header of its own.
	resp, body := r.do("POST", "/api/queue/v1/task/abc%2Fdef/status?x=1&y=a+b", `{"a": 1}`,
		http.Header{"X-Custom": {"kept"}, "Authorization": {"Hawk id=\"forged\""}})
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	got := echo(t, body)
	assert.Equal(t, "task-1", got["clientId"])
	assert.Equal(t, "/api/queue/v1/task/abc%2Fdef/status", got["path"], "escaping kept")
	assert.Equal(t, "x=1&y=a+b", got["query"])
	assert.Equal(t, "application/json", got["contentType"], "a body without Content-Type is JSON")
	assert.Equal(t, "kept", got["custom"])
	assert.Equal(t, `{"a": 1}`, got["body"])
	assert.Equal(t, "1", resp.Header.Get("X-Echo"), "the answer's headers come back")
	assert.Equal(t, d.srv.URL+"/api/queue/v1/task/abc%2Fdef/status?x=1&y=a+b", resp.Header.Get("X-Taskcluster-Endpoint"))
	assert.Equal(t, "task-1", resp.Header.Get("X-Taskcluster-Proxy-Perm-ClientId"))

	// The shortcut form; credentials replaced by a reclaim are used at once.
	r.creds.Store(&task.Credentials{ClientID: "task-2", AccessToken: "token-2"})
	resp, body = r.do("GET", "/queue/v1/ping", "", http.Header{"Content-Type": {"text/plain"}})
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	got = echo(t, body)
	assert.Equal(t, "task-2", got["clientId"])
	assert.Equal(t, "/api/queue/v1/ping", got["path"])
	assert.Equal(t, "text/plain", got["contentType"])
}

func TestProxyPassesAnswersBack(t *testing.T) {
	d := newDeployment(t)
	r := startRun(t, d.srv.URL, proxyOn)

	resp, _ := r.do("GET", "/api/queue/v1/redirect", "", nil)
	assert.Equal(t, http.StatusSeeOther, resp.StatusCode, "redirects are not followed")
	assert.Equal(t, "https://storage.example.com/blob", resp.Header.Get("Location"))

	d.flaky.Store(2)
	resp, body := r.do("GET", "/api/queue/v1/flaky", "", nil)
	assert.Equal(t, http.StatusOK, resp.StatusCode, "5xx answers are retried: %s", body)

	resp, body = r.do("GET", "/api/queue/v1/down", "", nil)
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Equal(t, "ServiceUnavailable", echo(t, body)["code"])

	r.creds.Store(&task.Credentials{ClientID: "task-1", AccessToken: "wrong"})
	resp, body = r.do("GET", "/api/queue/v1/ping", "", nil)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "4xx answers come back as they are")
	assert.Equal(t, "AuthenticationFailed", echo(t, body)["code"])
}

func TestProxyBewit(t *testing.T) {
	d := newDeployment(t)
	r := startRun(t, d.srv.URL, proxyOn)
	target := d.srv.URL + "/api/queue/v1/task/abc/runs/0/artifacts/private%2Fx.txt"
	resp, body := r.do("POST", "/bewit", target+"\n", nil)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, body)
	assert.Equal(t, body, resp.Header.Get("Location"))
	signed, err := url.Parse(body)
	require.NoError(t, err)
	assert.NotEmpty(t, signed.Query().Get("bewit"))

	// The signed URL authenticates as the task's client, with no header.
	get, err := http.Get(body)
	require.NoError(t, err)
	defer get.Body.Close()
	b, _ := io.ReadAll(get.Body)
	require.Equal(t, http.StatusOK, get.StatusCode, string(b))
	assert.Equal(t, "task-1", echo(t, string(b))["clientId"])

	resp, _ = r.do("GET", "/bewit", "", nil)
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
	resp, body = r.do("POST", "/bewit", "not a url", nil)
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.Contains(t, body, "absolute URL")
}

func TestProxyRefusals(t *testing.T) {
	d := newDeployment(t)
	r := startRun(t, d.srv.URL, proxyOn)
	for _, c := range []struct {
		method, path, body string
		status             int
		want               string
	}{
		{"PUT", "/credentials", `{"clientId": "x"}`, http.StatusForbidden, "cannot replace them"},
		{"GET", "/api/queue", "", http.StatusNotFound, "want /api/<service>/<version>/<path>"},
		{"GET", "/nothing", "", http.StatusNotFound, "/<hostname>/<path>"},
		{"POST", "/api/queue/v1/ping", strings.Repeat("x", 1001), http.StatusRequestEntityTooLarge, "maxRequestBody"},
	} {
		resp, body := r.do(c.method, c.path, c.body, nil)
		assert.Equal(t, c.status, resp.StatusCode, "%s %s: %s", c.method, c.path, body)
		assert.Contains(t, body, c.want)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	assert.Empty(t, d.seen, "nothing reached the deployment")
}

func TestProxyTargets(t *testing.T) {
	h := &handler{rootURL: "https://tc.example.com/"}
	for in, want := range map[string]string{
		"/api/queue/v1/task/a%2Fb?x=1":   "https://tc.example.com/api/queue/v1/task/a%2Fb?x=1",
		"/api/worker-manager/v1/workers": "https://tc.example.com/api/worker-manager/v1/workers",
		"/secrets/v1/secret/project/x":   "https://tc.example.com/api/secrets/v1/secret/project/x",
		"/queue.example.org/v1/ping?q=2": "https://queue.example.org/v1/ping?q=2",
	} {
		u, err := url.Parse(in)
		require.NoError(t, err)
		got, err := h.target(u)
		require.NoError(t, err, in)
		assert.Equal(t, want, got.String(), in)
	}
}

func TestProxyInRunMode(t *testing.T) {
	r := startRun(t, "", proxyOn)
	assert.Contains(t, r.log.String(), "run mode")
	resp, body := r.do("GET", "/api/queue/v1/ping", "", nil)
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Contains(t, body, "NoDeployment")
}

func TestProxyLifetimeAndPayload(t *testing.T) {
	d := newDeployment(t)
	r := startRun(t, d.srv.URL, proxyOn)
	require.NoError(t, r.tp.Dispose(context.Background()))
	_, err := http.Get(r.url + "/api/queue/v1/ping")
	assert.Error(t, err, "the proxy ends with the run")

	off := startRun(t, d.srv.URL, `{"features": {"taskclusterProxy": false}}`)
	assert.Empty(t, off.url, "no proxy, no variable, when the feature is off")
	none := startRun(t, d.srv.URL, `{}`)
	assert.Empty(t, none.url)

	p, err := New(plugins.Options{})
	require.NoError(t, err)
	tc := &task.Context{Log: task.NewLog(io.Discard), Definition: task.Definition{Payload: json.RawMessage(`{"features": {"taskclusterProxy": true}, "taskclusterProxyInterface": "docker-bridge"}`)}}
	_, err = p.NewTaskPlugin(context.Background(), tc)
	var ee *task.ExceptionError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, task.ReasonMalformedPayload, ee.Reason)
	assert.Contains(t, err.Error(), `payload.taskclusterProxyInterface: "docker-bridge" is not supported`)

	_, err = New(plugins.Options{Config: json.RawMessage(`{"maxRequestBody": -1}`)})
	assert.ErrorContains(t, err, "maxRequestBody: -1 is negative")
}

// hostEngine is the mock engine with the container engine's host-address
// abilities, giving addr (or err) as the worker host's address.
type hostEngine struct {
	engines.Engine
	addr netip.Addr
	err  error
}

func (e hostEngine) HostAddress(context.Context) (netip.Addr, error) { return e.addr, e.err }

type hostBuilder struct {
	*mock.SandboxBuilder
	addr  netip.Addr
	names []string
}

func (b *hostBuilder) AddHostName(_ context.Context, name string) (netip.Addr, error) {
	b.names = append(b.names, name)
	return b.addr, nil
}

func TestDockerWorkerDialectStartup(t *testing.T) {
	eng, err := mock.New(engines.Options{})
	require.NoError(t, err)
	_, err = New(plugins.Options{Dialect: task.DialectDockerWorker, Engine: eng})
	assert.ErrorContains(t, err, "needs an engine whose containers can reach the worker", "an engine without the ability is a config error")

	// Containers without a network: the worker runs, tasks asking for the
	// proxy are told why they cannot have it.
	p, err := New(plugins.Options{Dialect: task.DialectDockerWorker, Engine: hostEngine{Engine: eng, err: fmt.Errorf("engine.network is \"none\": %w", engines.ErrNoHostNetwork)}})
	require.NoError(t, err)
	tc := &task.Context{Log: task.NewLog(io.Discard), Definition: task.Definition{Payload: json.RawMessage(proxyOn)}}
	_, err = p.NewTaskPlugin(context.Background(), tc)
	var ee *task.ExceptionError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, task.ReasonMalformedPayload, ee.Reason)
	assert.Contains(t, err.Error(), `payload.features.taskclusterProxy: this worker's containers cannot reach the worker: engine.network is "none"`)
}

// On the host's network every container is 127.0.0.1: each run gets a
// loopback port of its own, reached as http://taskcluster:<port>.
func TestDockerWorkerDialectOnTheHostNetwork(t *testing.T) {
	d := newDeployment(t)
	eng, err := mock.New(engines.Options{})
	require.NoError(t, err)
	lo := netip.MustParseAddr("127.0.0.1")
	p, err := New(plugins.Options{Dialect: task.DialectDockerWorker, Engine: hostEngine{Engine: eng, addr: lo}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	ctx := context.Background()
	var logs [2]bytes.Buffer
	var urls [2]string
	for i, id := range []string{"task-1", "task-2"} {
		tc := &task.Context{TaskID: id, Worker: task.WorkerInfo{RootURL: d.srv.URL}, Log: task.NewLog(&logs[i]),
			Definition:  task.Definition{Payload: json.RawMessage(proxyOn)},
			Credentials: func() *task.Credentials { return &task.Credentials{ClientID: id, AccessToken: "token-" + id[5:]} }}
		tp, err := p.NewTaskPlugin(ctx, tc)
		require.NoError(t, err)
		mb, err := eng.NewSandboxBuilder(ctx, tc)
		require.NoError(t, err)
		b := &hostBuilder{SandboxBuilder: mb.(*mock.SandboxBuilder), addr: lo}
		require.NoError(t, tp.Prepare(ctx))
		require.NoError(t, tp.BuildSandbox(ctx, b))
		assert.Equal(t, []string{HostName}, b.names)
		urls[i] = b.Env()[EnvProxyURL]
		require.True(t, strings.HasPrefix(urls[i], "http://taskcluster:"), urls[i])
		t.Cleanup(func() { _ = tp.Dispose(ctx) })
	}
	assert.NotEqual(t, urls[0], urls[1], "a port per run")
	for i, id := range []string{"task-1", "task-2"} {
		resp, err := http.Get(strings.Replace(urls[i], "taskcluster", "127.0.0.1", 1) + "/api/queue/v1/ping")
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Equal(t, id, echo(t, string(b))["clientId"], "each run signs with its own credentials")
		assert.Contains(t, logs[i].String(), "a loopback port of this run's own")
	}
}

func TestProxyRefusesDotSegmentsAndUserInfo(t *testing.T) {
	h := &handler{rootURL: "https://tc.example.com"}
	for _, in := range []string{"/api/queue/v1/../../x", "/queue/v1/./ping", "/../x", "/x@127.0.0.1:1/x", "/api/queue/v1/a%2F..%2Fb"} {
		u, err := url.Parse(in)
		require.NoError(t, err)
		_, err = h.target(u)
		assert.Error(t, err, in)
	}
}

func TestProxyRefusesAnAnnouncedLargeBodyAtOnce(t *testing.T) {
	d := newDeployment(t)
	r := startRun(t, d.srv.URL, proxyOn)
	req, err := http.NewRequest("POST", r.url+"/api/queue/v1/ping", io.MultiReader(strings.NewReader(strings.Repeat("x", 2000))))
	require.NoError(t, err)
	req.ContentLength = 2000
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
	b, _ := io.ReadAll(resp.Body)
	assert.Contains(t, string(b), "the request body is 2000 bytes, over 1000")
}
