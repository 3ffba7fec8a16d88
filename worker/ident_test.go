package worker

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/taskcluster"
	"github.com/workergen/workergen/worker/config"
)

// fakeEngineBuild is the linux-native profile's config schema and defaults
// with the fake engine and no plugins: `work` runs for real (config
// loading, the Queue over HTTP) with tasks the fake engine runs.
func fakeEngineBuild(t *testing.T) Build {
	b := linuxNativeBuild(t)
	b.Plugins = nil
	b.Engine = EngineEntry{Name: "fake", New: func(engines.Options) (engines.Engine, error) { return newFakeEngine(), nil }}
	b.PayloadSchema = []byte(fakeSchema)
	return b
}

// clearTaskclusterEnv keeps the environment of the test process out of
// the configs the tests load.
func clearTaskclusterEnv(t *testing.T) {
	for _, k := range []string{"TASKCLUSTER_ROOT_URL", "TASKCLUSTER_CLIENT_ID", "TASKCLUSTER_ACCESS_TOKEN", "TASKCLUSTER_CERTIFICATE",
		config.EnvWorkerPoolID, config.EnvWorkerGroup, config.EnvWorkerID} {
		t.Setenv(k, "")
	}
}

// workConfig writes a `work` config for rootURL with the identity of
// queueEnv's worker, changed by edit, and returns its path.
func workConfig(t *testing.T, rootURL string, edit func(map[string]any)) string {
	cfg := map[string]any{
		"rootUrl":      rootURL,
		"credentials":  map[string]any{"clientId": "worker", "accessToken": "worker-token"},
		"workerPoolId": testPool, "workerGroup": "test-group", "workerId": "w1",
		"stateDir":    filepath.Join(t.TempDir(), "state"),
		"idleTimeout": 1,
	}
	if edit != nil {
		edit(cfg)
	}
	data, err := json.Marshal(cfg)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "worker.json")
	require.NoError(t, os.WriteFile(path, data, 0o600))
	return path
}

// runWork runs `work --config path` as the binary would, bounded by a
// generous deadline, and returns its exit code and output.
func runWork(t *testing.T, b Build, path string) (int, string) {
	t.Helper()
	var out lockedBuffer
	done := make(chan int, 1)
	go func() { done <- MainArgs(b, []string{"work", "--config", path}, &out, &out) }()
	select {
	case code := <-done:
		return code, out.String()
	case <-time.After(2 * time.Minute):
		t.Fatalf("work did not end; output so far:\n%s", out.String())
	}
	return 0, ""
}

func TestWorkRequiresOperatorIdentity(t *testing.T) {
	clearTaskclusterEnv(t)
	b := fakeEngineBuild(t)
	code, out := runWork(t, b, workConfig(t, "http://127.0.0.1:1", func(c map[string]any) { delete(c, "workerId") }))
	assert.Equal(t, ExitInvalidConfig, code)
	assert.Contains(t, out, "config.workerId: required for work")
	assert.Contains(t, out, "TASKCLUSTER_WORKER_ID")
	assert.NotContains(t, out, "config.workerGroup")
	assert.NotContains(t, out, "worker starting", "the identity is checked before anything else")

	code, out = runWork(t, b, workConfig(t, "http://127.0.0.1:1", func(c map[string]any) {
		delete(c, "workerId")
		delete(c, "workerGroup")
		delete(c, "workerPoolId")
	}))
	assert.Equal(t, ExitInvalidConfig, code)
	for _, k := range config.IdentityKeys {
		assert.Contains(t, out, "config."+k.Key+": required for work", k.Key)
		assert.Contains(t, out, k.Env, k.Key)
	}
	assert.NotContains(t, out, "local-1", "no placeholder identity in work")
}

func TestWorkIdentityFromEnvironment(t *testing.T) {
	clearTaskclusterEnv(t)
	env := newQueueEnv(t, time.Minute)
	t.Setenv(config.EnvWorkerID, "from-env-7")
	t.Setenv(config.EnvWorkerGroup, "test-group")
	code, out := runWork(t, fakeEngineBuild(t), workConfig(t, env.http.URL, func(c map[string]any) {
		delete(c, "workerId")
		delete(c, "workerGroup")
	}))
	assert.Equal(t, ExitIdle, code, out)
	assert.Contains(t, firstLine(out), "workerId=from-env-7")
}

func TestRunTaskFileUsesLocalIdentity(t *testing.T) {
	cfg := &Config{WorkerID: "mine"}
	config.FillLocalIdentity(cfg)
	assert.Equal(t, Config{WorkerPoolID: "workergen/local", WorkerGroup: "local", WorkerID: "mine"}, *cfg)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// The tasks directory defaults to <stateDir>/tasks, is named in the first
// log line, and holds the run journal.
func TestWorkTasksDirUnderStateDir(t *testing.T) {
	clearTaskclusterEnv(t)
	env := newQueueEnv(t, time.Minute)
	stateDir := filepath.Join(t.TempDir(), "state")
	code, out := runWork(t, fakeEngineBuild(t), workConfig(t, env.http.URL, func(c map[string]any) { c["stateDir"] = stateDir }))
	require.Equal(t, ExitIdle, code, out)
	tasksDir := filepath.Join(stateDir, "tasks")
	first := firstLine(out)
	assert.Contains(t, first, "worker starting")
	assert.Contains(t, first, "tasksDir="+tasksDir)
	assert.Contains(t, first, "stateDir="+stateDir)
	assert.DirExists(t, filepath.Join(tasksDir, journalDirName), "the run journal lives in tasksDir/.journal")
}

func TestDefaultStateDir(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	for _, c := range []struct {
		goos string
		euid int
		env  map[string]string
		want string
	}{
		{"linux", 0, map[string]string{"XDG_STATE_HOME": "/x", "HOME": "/root"}, "/var/lib/workergen"},
		{"linux", 0, map[string]string{"STATE_DIRECTORY": "/var/lib/wg-pool:/var/lib/other"}, "/var/lib/wg-pool"},
		{"linux", 1000, map[string]string{"STATE_DIRECTORY": "/srv/state", "HOME": "/home/u"}, "/srv/state"},
		{"linux", 0, map[string]string{"STATE_DIRECTORY": "relative"}, "/var/lib/workergen"},
		{"linux", 1000, map[string]string{"XDG_STATE_HOME": "/x/state", "HOME": "/home/u"}, "/x/state/workergen"},
		{"linux", 1000, map[string]string{"XDG_STATE_HOME": "relative", "HOME": "/home/u"}, "/home/u/.local/state/workergen"},
		{"darwin", 501, map[string]string{"HOME": "/Users/u"}, "/Users/u/.local/state/workergen"},
		{"windows", -1, map[string]string{"ProgramData": `D:\PD`}, `D:\PD\workergen`},
		{"windows", -1, nil, `C:\ProgramData\workergen`},
	} {
		got, err := config.DefaultStateDir(c.goos, c.euid, env(c.env))
		require.NoError(t, err)
		assert.Equal(t, c.want, got, "%s euid %d %v", c.goos, c.euid, c.env)
	}
	_, err := config.DefaultStateDir("linux", 1000, env(nil))
	require.ErrorIs(t, err, config.ErrConfig)
	assert.Contains(t, err.Error(), "config.stateDir")
}

// A rootUrl whose port refuses connections ends `work` at the start-up
// check, naming rootUrl, the URL tried and what happened.
func TestWorkRefusingRootURLFailsFast(t *testing.T) {
	clearTaskclusterEnv(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	rootURL := "http://" + ln.Addr().String()
	require.NoError(t, ln.Close()) // a free port nothing listens on
	start := time.Now()
	code, out := runWork(t, fakeEngineBuild(t), workConfig(t, rootURL, nil))
	t.Logf("FIGURE work with a refusing rootUrl to its exit: %s", time.Since(start).Round(10*time.Millisecond))
	assert.Equal(t, ExitInvalidConfig, code)
	assert.Contains(t, out, "start-up check of the Queue failed: rootUrl "+rootURL)
	assert.Contains(t, out, "GET "+rootURL+"/api/queue/v1/ping: connection refused")
	assert.NotContains(t, out, "worker started", "no claim loop")
}

func TestStartupCheckNotATaskclusterDeployment(t *testing.T) {
	srv := http.Server{Handler: http.NotFoundHandler()}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	w := &Worker{Config: &Config{}, Client: &taskcluster.Client{RootURL: "http://" + ln.Addr().String()}}
	err = w.checkQueue(context.Background())
	require.ErrorIs(t, err, ErrStartupCheck)
	assert.Contains(t, err.Error(), "answered 404")
	assert.Contains(t, err.Error(), "root URL")
}

func TestWorkBadCredentialsNameThe401(t *testing.T) {
	clearTaskclusterEnv(t)
	env := newQueueEnv(t, time.Minute)
	code, out := runWork(t, fakeEngineBuild(t), workConfig(t, env.http.URL, func(c map[string]any) {
		c["credentials"] = map[string]any{"clientId": "worker", "accessToken": "wrong"}
	}))
	assert.Equal(t, ExitInvalidConfig, code)
	assert.Contains(t, out, "the Queue at rootUrl "+env.http.URL+" refused claimWork")
	assert.Contains(t, out, "POST "+env.http.URL+"/api/queue/v1/claim-work/workergen-test%2Ffake: 401 Unauthorized (AuthenticationFailed): verifying header", "the URL tried, the status and the Queue's message")
}

// flakyServer serves h on a fixed local address that can be taken down
// (connections refused, open ones closed) and brought back.
type flakyServer struct {
	addr string
	h    http.Handler
	mu   sync.Mutex
	srv  *http.Server
}

func newFlakyServer(t *testing.T, h http.Handler) *flakyServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := &flakyServer{addr: ln.Addr().String(), h: h}
	s.serve(ln)
	t.Cleanup(s.down)
	return s
}

func (s *flakyServer) serve(ln net.Listener) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.srv = &http.Server{Handler: s.h}
	go func(srv *http.Server) { _ = srv.Serve(ln) }(s.srv)
}

func (s *flakyServer) down() {
	s.mu.Lock()
	defer s.mu.Unlock()
	_ = s.srv.Close()
}

func (s *flakyServer) up(t *testing.T) {
	ln, err := net.Listen("tcp", s.addr)
	require.NoError(t, err)
	s.serve(ln)
}

// A Queue outage (connections refused) while a run is to be resolved is
// logged when it starts, reminded while it lasts and logged with its
// duration and retry count when it ends; the run is resolved after it.
func TestWorkLogsQueueOutageStartAndEnd(t *testing.T) {
	env := newQueueEnv(t, time.Minute)
	flaky := newFlakyServer(t, env.server.Handler())
	id := env.createTask(`{"sleepMs": 200}`, 0)
	w, eng := env.worker(1, 1)
	c := *env.client
	c.RootURL = "http://" + flaky.addr
	w.Client = &c
	w.OutageReminder = 200 * time.Millisecond
	var logs lockedBuffer
	w.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	downAt := make(chan time.Time, 1)
	go func() {
		<-eng.started
		flaky.down()
		downAt <- time.Now()
	}()
	done := make(chan error, 1)
	go func() { done <- w.Work(context.Background()) }()
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "Queue outage: calls") }, time.Minute, 10*time.Millisecond, "no outage start; log:\n%s", &logs)
	t.Logf("FIGURE Queue down to the outage's first warning: %s (the task ends 200 ms after; its resolution retries for 3 s)", time.Since(<-downAt).Round(10*time.Millisecond))
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "Queue outage continues") }, time.Minute, 20*time.Millisecond, "no reminder; log:\n%s", &logs)
	flaky.up(t)
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(time.Minute):
		t.Fatalf("Work did not end after the outage; log:\n%s", logs.String())
	}
	assert.Equal(t, "completed", runState(env.status(id), 0))
	log := logs.String()
	start := lineWith(log, "Queue outage: calls to the Queue are failing")
	assert.Contains(t, start, "level=WARN")
	assert.Contains(t, start, "call=resolve")
	assert.Contains(t, start, "connection refused")
	assert.Contains(t, start, "taskId="+id, "the start names the run whose call failed")
	end := lineWith(log, "Queue outage over")
	assert.Contains(t, end, "level=INFO")
	assert.Contains(t, end, "duration=")
	m := regexp.MustCompile(`retries=(\d+)`).FindStringSubmatch(end)
	require.NotNil(t, m, end)
	n, _ := strconv.Atoi(m[1])
	assert.GreaterOrEqual(t, n, 1)
	assert.Equal(t, 1, strings.Count(log, "Queue outage: calls"), "the start is logged once")
	assert.Equal(t, 1, strings.Count(log, "Queue outage over"), "the end is logged once")
}

func lineWith(log, s string) string {
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

func TestGenericWorkerConfigWorkerGroupDefault(t *testing.T) {
	b := linuxNativeBuild(t)
	path := filepath.Join(t.TempDir(), "gw.json")
	require.NoError(t, os.WriteFile(path, []byte(`{"rootURL": "https://tc.example.com", "clientId": "c", "accessToken": "t", "workerType": "b", "workerId": "w"}`), 0o600))
	wc, err := loadWorkerConfig(b, path, nil)
	require.NoError(t, err)
	assert.Equal(t, "test-worker-group", wc.WorkerGroup, "generic-worker's default")
	require.NoError(t, checkWorkConfig(wc.Config))
}
