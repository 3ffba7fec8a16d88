package localqueue

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/workergen/workergen/taskcluster"
	"github.com/workergen/workergen/taskcluster/hawk"
	"github.com/workergen/workergen/taskcluster/tcschema"
	"github.com/workergen/workergen/taskcluster/tcwire"
)

func TestAuthentication(t *testing.T) {
	h := newHarness(t)
	id := h.createTask(nil)
	claim := map[string]any{"tasks": 1, "workerGroup": testWorkerGroup, "workerId": testWorkerID}
	path := "/claim-work/" + url.PathEscape(testQueue)

	// Wrong access token, unknown client: 401.
	for _, c := range []*tcClient{h.client("worker", "wrong-token", ""), h.client("stranger", "x", "")} {
		r := c.call("POST", "queue", path, claim, "", "", 401)
		var e struct{ Code string }
		r.decode(t, &e)
		if e.Code != "AuthenticationFailed" {
			t.Fatalf("code %q", e.Code)
		}
	}
	// A stale timestamp: 401.
	stale := *h.worker
	u, _ := url.Parse(h.srv.URL + "/api/queue/v1/task/" + id + "/status")
	req, _ := http.NewRequest("GET", u.String(), nil)
	auth, _ := hawk.SignHeader(stale.creds, hawk.RequestFromURL("GET", u), h.clock.Now().Add(-time.Hour), "")
	req.Header.Set("Authorization", auth)
	if r := h.send(req); r.status != 401 {
		t.Fatalf("stale timestamp: %d", r.status)
	}
	// A tampered payload with a payload hash: 401.
	req, _ = http.NewRequest("POST", h.srv.URL+"/api/queue/v1"+path, strings.NewReader(`{"tasks":1,"workerGroup":"test-group","workerId":"other"}`))
	req.Header.Set("Content-Type", "application/json")
	hash := hawk.PayloadHash("application/json", []byte(`{"tasks":1,"workerGroup":"test-group","workerId":"test-worker"}`))
	auth, _ = hawk.SignHeader(h.worker.creds, hawk.RequestFromURL("POST", req.URL), h.clock.Now(), hash)
	req.Header.Set("Authorization", auth)
	if r := h.send(req); r.status != 401 {
		t.Fatalf("payload hash mismatch: %d %s", r.status, r.body)
	}

	// Missing scopes: 403.
	h.client("nobody", "nobody-token", "").call("POST", "queue", path, claim, "", "", 403)
	otherGroup := map[string]any{"tasks": 1, "workerGroup": "other-group", "workerId": testWorkerID}
	r := h.worker.call("POST", "queue", path, otherGroup, "", "", 403)
	if !strings.Contains(string(r.body), "queue:worker-id:other-group/test-worker") {
		t.Fatalf("403 message does not name the scope: %s", r.body)
	}
	h.worker.call("POST", "queue", "/claim-work/other-prov/other-wt", claim, "", "", 403)
	h.worker.call("PUT", "queue", "/task/"+NewTaskID(), h.taskDef(nil), "", "", 403)
	// createTask needs the task's own scopes.
	limited := h.client("limited", "limited-token", "")
	h.opts.Clients = append(h.opts.Clients, Client{ClientID: "limited", AccessToken: "limited-token",
		Scopes: []string{"queue:create-task:lowest:test-prov/test-wt", "queue:scheduler-id:-", "queue:create-task:project:none"}})
	h.restart()
	h.worker.call("POST", "queue", path, claim, "", "", 200) // the task survived the restart
	limited.call("PUT", "queue", "/task/"+NewTaskID(), h.taskDef(func(d map[string]any) { d["scopes"] = []string{} }), "", "", 200)
	limited.call("PUT", "queue", "/task/"+NewTaskID(), h.taskDef(nil), "", "", 403)                                                                        // task scope
	limited.call("PUT", "queue", "/task/"+NewTaskID(), h.taskDef(func(d map[string]any) { d["scopes"], d["priority"] = []string{}, "high" }), "", "", 403) // priority
	// Anonymous: reads only.
	anon := &tcClient{h: h}
	anon.call("GET", "queue", "/task/"+id+"/status", nil, "", "queue/v1/task-status-response.json", 200)
	anon.call("POST", "queue", path, claim, "", "", 403)

	// authorizedScopes restrict a client.
	restricted := h.client("admin", "admin-token", "")
	restricted.creds.AuthorizedScopes = []string{"queue:status:*"}
	restricted.call("GET", "queue", "/task/"+id+"/status", nil, "", "", 200)
	restricted.call("POST", "queue", "/task/"+id+"/cancel", nil, "", "", 403)

	// Signed URLs (bewit) work for GETs.
	signed, err := hawk.SignURL(h.admin.creds, u, h.clock.Now(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if r := h.get(signed.String()); r.status != 200 {
		t.Fatalf("bewit: %d %s", r.status, r.body)
	}
}

func TestTaskCredentials(t *testing.T) {
	h := newHarness(t)
	a := h.createTask(nil)
	b := h.createTask(nil)
	claims := h.claimN(2)
	if len(claims) != 2 {
		t.Fatalf("claimed %d", len(claims))
	}
	ca := h.clientFor(claims[0].Credentials)
	if claims[0].Status.TaskID != a || claims[1].Status.TaskID != b {
		t.Fatal("claim order")
	}
	var cert hawk.Certificate
	if err := json.Unmarshal([]byte(claims[0].Credentials.Certificate), &cert); err != nil {
		t.Fatal(err)
	}
	wantScopes := []string{"queue:reclaim-task:" + a + "/0", "queue:resolve-task:" + a + "/0", "queue:create-artifact:" + a + "/0", "secrets:get:project/x"}
	if strings.Join(cert.Scopes, ",") != strings.Join(wantScopes, ",") || cert.Issuer != IssuerClientID ||
		!strings.HasPrefix(claims[0].Credentials.ClientID, "task-client/"+a+"/0/on/test-group/test-worker/until/") ||
		cert.Expiry != claims[0].TakenUntil.UnixMilli() {
		t.Fatalf("credentials %s: %+v", claims[0].Credentials.ClientID, cert)
	}
	// Task A's credentials cannot touch task B.
	ca.call("POST", "queue", runPath(b, 0, "/reclaim"), nil, "", "", 403)
	ca.call("POST", "queue", runPath(b, 0, "/completed"), nil, "", "", 403)
	ca.call("POST", "queue", runPath(b, 0, "/artifacts/public/x"), map[string]any{"storageType": "error", "expires": h.clock.Now().Add(time.Hour), "reason": "file-missing-on-worker", "message": "m"}, "", "", 403)
	// Credentials expire shortly after takenUntil.
	h.clock.Advance(26 * time.Minute)
	ca.call("GET", "queue", "/task/"+a+"/status", nil, "", "", 401)
}

func TestRestartPersistence(t *testing.T) {
	h := newHarness(t)
	done, tc := h.running(nil)
	exp := h.clock.Now().Add(time.Hour).Format(time.RFC3339)
	r := h.createArtifact(tc, done, 0, "public/out.txt", map[string]any{"storageType": "s3", "contentType": "text/plain", "expires": exp}, 200)
	var res struct{ PutURL string }
	r.decode(t, &res)
	h.put(res.PutURL, "text/plain", []byte("persisted"))
	h.createArtifact(tc, done, 0, "public/err", map[string]any{"storageType": "error", "expires": exp, "reason": "file-missing-on-worker", "message": "gone"}, 200)
	tc.call("POST", "queue", runPath(done, 0, "/completed"), nil, "", "", 200)
	run, rtc := h.running(nil)
	pending := h.createTask(nil)
	before := map[string]TaskStatus{}
	for _, id := range []string{done, run, pending} {
		before[id] = h.status(id)
	}

	h.restart()
	for id, st := range before {
		after := h.status(id)
		a, _ := json.Marshal(after)
		b, _ := json.Marshal(st)
		if string(a) != string(b) {
			t.Errorf("status of %s changed across restart:\n%s\n%s", id, b, a)
		}
	}
	if ids := h.s.TaskIDs(); len(ids) != 3 {
		t.Fatalf("TaskIDs after restart: %v", ids)
	}
	// The running run's credentials still work (issuer key persisted).
	rtc.call("POST", "queue", runPath(run, 0, "/reclaim"), nil, "", "", 200)
	// The pending task is still claimable, and artifacts still download.
	if c := h.claim(); c.Status.TaskID != pending {
		t.Fatalf("claimed %s after restart, want %s", c.Status.TaskID, pending)
	}
	r = (&tcClient{h: h}).do("GET", "queue", runPath(done, 0, "/artifacts/public/out.txt"), nil)
	if got := h.get(r.header.Get("Location")); string(got.body) != "persisted" {
		t.Fatalf("artifact after restart: %d %q", got.status, got.body)
	}
	(&tcClient{h: h}).callAs(h, "GET", runPath(done, 0, "/artifacts/public/err"), 424)
	// The old putUrl's signature is still valid after a restart too.
	if pr := h.put(res.PutURL, "text/plain", []byte("again")); pr.status != 200 {
		t.Fatalf("putUrl after restart: %d", pr.status)
	}
	// Claim expiry still applies to runs claimed before the restart.
	h.clock.Advance(time.Hour)
	if err := h.s.CheckExpiry(); err != nil {
		t.Fatal(err)
	}
	if st := h.status(run); st.Runs[0].ReasonResolved != tcwire.ReasonClaimExpired {
		t.Fatalf("after restart and expiry: %s", runStates(st))
	}
}

func TestBackgroundExpirer(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.ExpireInterval = 5 * time.Millisecond })
	id := h.createTask(nil)
	h.claim()
	h.clock.Advance(21 * time.Minute)
	deadline := time.Now().Add(30 * time.Second)
	for {
		h.s.mu.Lock()
		st := h.s.tasks[id].status() // read without triggering expiry
		h.s.mu.Unlock()
		if len(st.Runs) == 2 {
			if runStates(st) != "exception/scheduled/claim-expired pending/retry/" {
				t.Fatalf("expirer: %s", runStates(st))
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("background expirer did not resolve the expired claim")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRoutesMatchReference checks the served endpoints against the
// upstream API references: method, route and scope expression.
func TestRoutesMatchReference(t *testing.T) {
	shared, err := tcschema.SharedDir()
	if err != nil {
		t.Fatal(err)
	}
	h := &Server{}
	for _, service := range []string{"queue", "object", "worker-manager", "auth"} {
		data, err := os.ReadFile(filepath.Join(shared, "taskcluster", "references", service, "v1", "api.json"))
		if err != nil {
			t.Fatal(err)
		}
		var ref struct {
			Entries []struct {
				Name, Method, Route string
				Scopes              json.RawMessage
			}
		}
		if err := json.Unmarshal(data, &ref); err != nil {
			t.Fatal(err)
		}
		entries := map[string]int{}
		for i, e := range ref.Entries {
			entries[e.Name] = i
		}
		var names []string
		for _, rt := range h.apiRoutes() {
			if rt.service != service {
				continue
			}
			names = append(names, rt.name)
			i, ok := entries[rt.name]
			if !ok {
				t.Errorf("%s.%s: not in the reference", service, rt.name)
				continue
			}
			e := ref.Entries[i]
			if e.Method != rt.method || e.Route != rt.path {
				t.Errorf("%s.%s: %s %s, reference %s %s", service, rt.name, rt.method, rt.path, e.Method, e.Route)
			}
			got, err := json.Marshal(rt.scopes)
			if err != nil {
				t.Fatal(err)
			}
			if !jsonEqual(t, got, e.Scopes) {
				t.Errorf("%s.%s scopes: %s, reference %s", service, rt.name, got, e.Scopes)
			}
		}
		sort.Strings(names)
		t.Logf("%s: %s", service, strings.Join(names, " "))
	}
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatal(err)
	}
	if len(b) == 0 {
		b = []byte("null")
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatal(err)
	}
	ja, _ := json.Marshal(va)
	jb, _ := json.Marshal(vb)
	return string(ja) == string(jb)
}

func TestStartAndListenAndServe(t *testing.T) {
	opts := Options{Dir: t.TempDir(), LongPoll: time.Minute, NoSync: true,
		Clients: []Client{{ClientID: "w", AccessToken: "t", Scopes: []string{"*"}}}}
	r, err := Start("127.0.0.1:0", opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := net.SplitHostPort(strings.TrimPrefix(r.URL, "http://")); err != nil {
		t.Fatalf("base URL %q", r.URL)
	}
	resp, err := http.Get(r.URL + "/api/queue/v1/ping")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("ping: %d", resp.StatusCode)
	}
	// A long poll in flight does not hold up Stop.
	polled := make(chan int, 1)
	go func() {
		u, _ := url.Parse(r.URL + "/api/queue/v1/claim-work/p/w")
		req, _ := http.NewRequest("POST", u.String(), strings.NewReader(`{"tasks":1,"workerGroup":"g","workerId":"i"}`))
		auth, _ := hawk.SignHeader(hawk.Credentials{ClientID: "w", AccessToken: "t"}, hawk.RequestFromURL("POST", u), time.Now(), "")
		req.Header.Set("Authorization", auth)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			polled <- -1
			return
		}
		_ = resp.Body.Close()
		polled <- resp.StatusCode
	}()
	waitFor(t, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return len(r.waiters) > 0
	})
	if err := r.Stop(context.Background()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if code := <-polled; code != 200 && code != 503 {
		t.Fatalf("long poll ended with %d", code)
	}
	http.DefaultClient.CloseIdleConnections()

	// ListenAndServe runs until its context ends; the state survives.
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	readyURL := make(chan string, 1)
	go func() {
		errc <- ListenAndServe(ctx, "127.0.0.1:0", opts, func(s *Server, base string) { readyURL <- base })
	}()
	if u := <-readyURL; !strings.HasPrefix(u, "http://127.0.0.1:") {
		t.Fatalf("ready URL %q", u)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("ListenAndServe: %v", err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestQueueDownAndBack stops the Queue mid-task and starts it again on the
// same address and directory: the worker's claim, credentials and upload
// URL keep working, and the run is resolved once the Queue is back.
func TestQueueDownAndBack(t *testing.T) {
	dir := t.TempDir()
	opts := Options{Dir: dir, LongPoll: time.Second, NoSync: true, ExpireInterval: -1,
		Clients: []Client{{ClientID: "w", AccessToken: "t", Scopes: []string{"*"}}}}
	r, err := Start("127.0.0.1:0", opts)
	if err != nil {
		t.Fatal(err)
	}
	addr := strings.TrimPrefix(r.URL, "http://")
	ctx := context.Background()
	id := NewTaskID()
	now := time.Now()
	if _, err := r.CreateTaskJSON(ctx, id, map[string]any{"taskQueueId": testQueue, "created": now, "deadline": now.Add(time.Hour),
		"payload": map[string]any{}, "metadata": map[string]any{"name": "n", "description": "d", "owner": "o", "source": "https://x"}}); err != nil {
		t.Fatal(err)
	}
	claims, err := r.ClaimWork(ctx, testQueue, "g", "w", 1)
	if err != nil || len(claims) != 1 {
		t.Fatalf("claim: %v", err)
	}
	tq := (&taskcluster.Client{RootURL: r.URL, Credentials: taskcluster.StaticCredentials(claims[0].Credentials), MaxElapsedTime: time.Minute,
		InitialInterval: 10 * time.Millisecond, MaxInterval: 50 * time.Millisecond}).Queue()
	art, err := tq.CreateArtifact(ctx, id, 0, "public/log", taskcluster.S3Artifact("text/plain", 2, now.Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	// While the Queue is down, the client retries; bring it back meanwhile.
	back := make(chan *Running, 1)
	go func() {
		// The port is normally free at once; retry briefly in case not.
		deadline := time.Now().Add(30 * time.Second)
		for {
			r2, err := Start(addr, opts)
			if err == nil || time.Now().After(deadline) {
				back <- r2
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	if _, err := tq.ReclaimTask(ctx, id, 0); err != nil {
		t.Fatalf("reclaim across the outage: %v", err)
	}
	r2 := <-back
	if r2 == nil {
		t.Fatal("could not restart on " + addr)
	}
	defer func() { _ = r2.Stop(ctx) }()
	c := &taskcluster.Client{}
	if err := c.Put(ctx, art.PutURL, func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader("ok")), nil },
		taskcluster.PutOptions{ContentLength: 2, ContentType: "text/plain"}); err != nil {
		t.Fatalf("upload after restart: %v", err)
	}
	if _, err := tq.ReportCompleted(ctx, id, 0); err != nil {
		t.Fatal(err)
	}
	if st, _ := r2.Status(id); st.State != tcwire.StateCompleted {
		t.Fatalf("state %s", st.State)
	}
	if arts, err := r2.Artifacts(id, 0); err != nil || string(arts[0].Content) != "ok" {
		t.Fatalf("artifacts: %v %v", arts, err)
	}
}

func TestPurgeExpired(t *testing.T) {
	h := newHarness(t)
	id, tc := h.running(func(d map[string]any) {
		d["expires"] = h.clock.Now().Add(48 * time.Hour).Format(time.RFC3339)
	})
	upload := func(name string, expires time.Duration) string {
		r := h.createArtifact(tc, id, 0, name, map[string]any{"storageType": "s3", "contentType": "text/plain",
			"expires": h.clock.Now().Add(expires).Format(time.RFC3339)}, 200)
		var res struct{ PutURL string }
		r.decode(t, &res)
		h.put(res.PutURL, "text/plain", []byte(name))
		p, err := h.s.ArtifactPath(id, 0, name)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	short := upload("public/short", time.Hour)
	long := upload("public/long", 40*time.Hour)
	tc.call("POST", "queue", runPath(id, 0, "/completed"), nil, "", "", 200)

	h.clock.Advance(2 * time.Hour)
	if n, a, err := h.s.PurgeExpired(); err != nil || n != 0 || a != 1 {
		t.Fatalf("first purge: %d tasks, %d artifacts, %v", n, a, err)
	}
	if _, err := os.Stat(short); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("expired artifact bytes still there: %v", err)
	}
	if _, err := os.Stat(long); err != nil {
		t.Fatal(err)
	}
	h.admin.call("GET", "queue", runPath(id, 0, "/artifacts/public/short"), nil, "", "", 404)

	// Past the task's expiry, the task goes with everything it had; the
	// state survives a restart without it.
	h.clock.Advance(47 * time.Hour)
	if err := h.s.CheckExpiry(); err != nil {
		t.Fatal(err)
	}
	if _, err := h.s.Status(id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("expired task still there: %v", err)
	}
	if _, err := os.Stat(long); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("bytes of an expired task still there: %v", err)
	}
	if _, err := os.Stat(filepath.Dir(long)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the task's emptied blob directory was left: %v", err)
	}
	h.restart()
	if ids := h.s.TaskIDs(); len(ids) != 0 {
		t.Fatalf("tasks after restart: %v", ids)
	}
}

// TestDateHeaderFromServerClock: answers carry the server clock's time, so
// workers can correct for their own clock.
func TestDateHeaderFromServerClock(t *testing.T) {
	clock := NewFakeClock(time.Date(2031, 5, 6, 7, 8, 9, 0, time.UTC))
	s, err := New(Options{Dir: t.TempDir(), NoSync: true, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	for _, path := range []string{"/api/queue/v1/ping", "/api/queue/v1/task/nosuchtask"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if got := resp.Header.Get("Date"); got != "Tue, 06 May 2031 07:08:09 GMT" {
			t.Errorf("%s: Date %q, want the server clock's time", path, got)
		}
	}
}
