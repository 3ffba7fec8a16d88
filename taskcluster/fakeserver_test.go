package taskcluster

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/taskcluster/hawk"
	"github.com/workergen/workergen/taskcluster/tcschema"
)

// endpoint is one entry of an upstream API reference.
type endpoint struct {
	Service string
	Name    string   `json:"name"`
	Method  string   `json:"method"`
	Route   string   `json:"route"`
	Args    []string `json:"args"`
	Input   string   `json:"input"`
	Output  string   `json:"output"`
}

// schemaID turns a reference's "v1/x.json#" into "<service>/v1/x.json".
func (e *endpoint) schemaID(rel string) string {
	if rel == "" {
		return ""
	}
	return e.Service + "/" + strings.TrimSuffix(rel, "#")
}

// match returns the route args when the escaped path matches the route.
func (e *endpoint) match(method, escapedPath string) (map[string]string, bool) {
	if !strings.EqualFold(method, e.Method) {
		return nil, false
	}
	want := strings.Split(strings.TrimPrefix(e.Route, "/"), "/")
	got := strings.Split(strings.TrimPrefix(escapedPath, "/"), "/")
	if len(want) != len(got) {
		return nil, false
	}
	args := map[string]string{}
	for i, w := range want {
		if strings.HasPrefix(w, "<") && strings.HasSuffix(w, ">") {
			v, err := url.PathUnescape(got[i])
			if err != nil || v == "" {
				return nil, false
			}
			args[strings.Trim(w, "<>")] = v
			continue
		}
		if w != got[i] {
			return nil, false
		}
	}
	return args, true
}

// reply is what a fake handler answers.
type reply struct {
	Status  int
	Body    any // marshalled to JSON; validated against the output schema on 2xx
	Raw     []byte
	Headers map[string]string
	// NoValidate skips output validation (error answers, redirects).
	NoValidate bool
}

// call is one request the fake server received.
type recorded struct {
	Endpoint string
	Args     map[string]string
	Body     []byte
	Identity *hawk.Identity
	Header   http.Header
}

type handler func(args map[string]string, body []byte, id *hawk.Identity) reply

// fakeTC is an httptest server speaking the upstream routes of the queue,
// object and worker-manager references. It verifies Hawk with the hawk
// package's Authenticator, validates each request body against the
// endpoint's input schema and each 2xx answer against its output schema,
// and records requests. Handlers are set per endpoint name
// ("queue.claimWork").
type fakeTC struct {
	t         *testing.T
	srv       *httptest.Server
	schemas   *tcschema.Set
	endpoints []*endpoint
	auth      *hawk.Authenticator

	mu       sync.Mutex
	handlers map[string]handler
	calls    []recorded
	// extra serves non-API paths (put URLs).
	extra map[string]http.HandlerFunc
}

var testClients = map[string]hawk.Client{
	"worker":     {AccessToken: "worker-token", Scopes: []string{"*"}},
	"worker-two": {AccessToken: "worker-two-token", Scopes: []string{"*"}},
}

func newFakeTC(t *testing.T) *fakeTC {
	t.Helper()
	f := &fakeTC{
		t:        t,
		schemas:  tcschema.ForTest(t),
		handlers: map[string]handler{},
		extra:    map[string]http.HandlerFunc{},
		auth: &hawk.Authenticator{Lookup: func(_ context.Context, id string) (hawk.Client, error) {
			c, ok := testClients[id]
			if !ok {
				return hawk.Client{}, hawk.ErrUnknownClient
			}
			return c, nil
		}},
	}
	shared, err := tcschema.SharedDir()
	require.NoError(t, err)
	for _, svc := range []string{"queue", "object", "worker-manager"} {
		raw, err := os.ReadFile(filepath.Join(shared, "taskcluster", "references", svc, "v1", "api.json"))
		require.NoError(t, err)
		var ref struct {
			Entries []*endpoint `json:"entries"`
		}
		require.NoError(t, json.Unmarshal(raw, &ref))
		for _, e := range ref.Entries {
			e.Service = svc
			f.endpoints = append(f.endpoints, e)
		}
	}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

// on sets the handler of an endpoint ("queue.claimWork").
func (f *fakeTC) on(name string, h handler) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.handlers[name] = h
}

func (f *fakeTC) onPath(path string, h http.HandlerFunc) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.extra[path] = h
}

func (f *fakeTC) recorded() []recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]recorded(nil), f.calls...)
}

func (f *fakeTC) count(name string) int {
	n := 0
	for _, c := range f.recorded() {
		if c.Endpoint == name {
			n++
		}
	}
	return n
}

// client returns a client for the fake with quick retries.
func (f *fakeTC) client(creds *Credentials) *Client {
	c := &Client{
		RootURL:         f.srv.URL,
		HTTPClient:      f.srv.Client(),
		InitialInterval: 1e6, // 1ms
		MaxInterval:     1e7, // 10ms
	}
	if creds != nil {
		c.Credentials = StaticCredentials(*creds)
	}
	return c
}

func (f *fakeTC) fail(w http.ResponseWriter, status int, code, format string, args ...any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set(HeaderResponseRequest, "req-fake")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"code": code, "message": fmt.Sprintf(format, args...), "requestInfo": map[string]any{}})
}

func (f *fakeTC) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	extra := f.extra[r.URL.Path]
	f.mu.Unlock()
	if extra != nil {
		extra(w, r)
		return
	}
	path := r.URL.EscapedPath()
	var ep *endpoint
	var args map[string]string
	for _, e := range f.endpoints {
		prefix := "/api/" + e.Service + "/v1"
		if !strings.HasPrefix(path, prefix+"/") {
			continue
		}
		if a, ok := e.match(r.Method, strings.TrimPrefix(path, prefix)); ok {
			ep, args = e, a
			break
		}
	}
	if ep == nil {
		f.fail(w, 404, "ResourceNotFound", "no route for %s %s", r.Method, path)
		return
	}
	name := ep.Service + "." + ep.Name
	body, err := io.ReadAll(r.Body)
	if err != nil {
		f.fail(w, 400, "MalformedPayload", "%v", err)
		return
	}
	var id *hawk.Identity
	if r.Header.Get("Authorization") != "" || r.URL.Query().Has("bewit") {
		id, err = f.auth.Authenticate(r.Context(), r)
		if err != nil {
			f.t.Errorf("%s: authentication failed: %v", name, err)
			f.fail(w, 401, "AuthenticationFailed", "%v", err)
			return
		}
	}
	if in := ep.schemaID(ep.Input); in != "" {
		if err := f.schemas.Validate(in, body); err != nil {
			f.t.Errorf("%s: request body %s does not validate: %v", name, body, err)
			f.fail(w, 400, "InputValidationError", "%v", err)
			return
		}
	} else if len(body) > 0 {
		f.t.Errorf("%s: unexpected request body %s", name, body)
	}
	f.mu.Lock()
	f.calls = append(f.calls, recorded{Endpoint: name, Args: args, Body: body, Identity: id, Header: r.Header.Clone()})
	h := f.handlers[name]
	f.mu.Unlock()
	if h == nil {
		f.fail(w, 500, "InternalServerError", "no fake handler for %s", name)
		return
	}
	rep := h(args, body, id)
	out := rep.Raw
	if out == nil && rep.Body != nil {
		out, err = json.Marshal(rep.Body)
		require.NoError(f.t, err)
	}
	if rep.Status == 0 {
		rep.Status = 200
	}
	if o := ep.schemaID(ep.Output); o != "" && rep.Status < 400 && !rep.NoValidate {
		if err := f.schemas.Validate(o, out); err != nil {
			f.t.Errorf("%s: fake answer %s does not validate: %v", name, out, err)
		}
	}
	for k, v := range rep.Headers {
		w.Header().Set(k, v)
	}
	if out != nil {
		w.Header().Set("Content-Type", "application/json")
	}
	w.Header().Set(HeaderResponseRequest, "req-"+ep.Name)
	w.WriteHeader(rep.Status)
	_, _ = w.Write(out)
}
