// Package taskclusterproxy is generic-worker's `features.taskclusterProxy`
// as a plugin (upstream: schemas/generic-worker/insecure_posix.json and
// multiuser_windows.json, properties `features.taskclusterProxy` and
// `taskclusterProxyInterface`; the proxy's HTTP interface follows
// tools/taskcluster-proxy in the Taskcluster repository).
//
// With `features.taskclusterProxy: true`, the worker serves an HTTP proxy on
// the loopback interface for the run's lifetime and sets
// TASKCLUSTER_PROXY_URL (e.g. "http://127.0.0.1:41234") in the task's
// environment. Requests to it reach the worker's Taskcluster deployment
// signed with the run's task credentials, so a task calls Taskcluster APIs
// with its own scopes without holding credentials. Credentials refreshed by
// a reclaim are used from the next request on.
//
// Each run gets its own port (picked by the system), so runs on one worker
// never share a proxy or its credentials.
//
// # Routes
//
//   - `/api/<service>/<version>/<path>` (the preferred form: give a
//     Taskcluster client rootUrl=$TASKCLUSTER_PROXY_URL) goes to
//     `<rootUrl>/api/<service>/<version>/<path>`;
//   - `/<service>/<version>/<path>` (the shortcut form) goes to the same;
//   - `/<hostname>/<path>`, where the first segment holds a dot, goes to
//     `https://<hostname>/<path>`, for services outside the deployment
//     that use Taskcluster's Hawk authentication;
//   - `POST /bewit` with a URL as the body answers 303 See Other with the
//     URL signed for one hour (bewit) in Location and in the body;
//   - `/credentials` answers 403: the worker keeps the credentials current
//     itself, and a task may not replace them.
//
// Query strings are kept. The request's headers are passed on, except
// Authorization, which is replaced by the signature; a request with a body
// and no Content-Type gets application/json, as upstream does. Answers
// come back as they are, redirects included (the proxy does not follow
// them). Network errors and 5xx answers are retried with backoff; after
// the last attempt the task gets 502 (network) or the last 5xx with the
// service's error. Every answer carries X-Taskcluster-Endpoint (the URL it
// was sent to) and X-Taskcluster-Proxy-Temp-ClientId or
// X-Taskcluster-Proxy-Perm-ClientId.
//
// In run mode there is no deployment: the proxy still runs, and answers
// 503 with a message saying so.
//
// # docker-worker payloads
//
// When the profile's dialect is docker-worker (Options.Dialect; the
// linux-docker and linux-podman profiles), `features.taskclusterProxy` works as
// in docker-worker: the task calls http://taskcluster, and
// TASKCLUSTER_PROXY_URL is "http://taskcluster". docker-worker linked a
// proxy container under that name; here the engine maps the name to the
// worker host's address on the container's network (the gateway,
// engines.HostNameBuilder), where the plugin serves port 80
// (`plugins.taskclusterproxy.port`) for every run at once, telling runs
// apart by the address each connection comes from
// (engines.AddressedSandbox). A request from an address no run has
// registered waits briefly for its run to start, then gets 403; an address
// two runs share is refused for both, never signed for the other.
//
// The server is started with the worker, so an operator sees at once when
// the port cannot be had (in use, or privileged for a rootless worker):
// the worker logs a warning and runs on, and tasks asking for the proxy
// are malformed-payload saying why; so are they when the containers have
// no network (engine.network "none"). On the host's network
// (engine.network "host") containers cannot be told apart by address:
// each run gets a loopback port of its own instead, and
// TASKCLUSTER_PROXY_URL is "http://taskcluster:<port>".
//
// Paths with "." or ".." segments, and a hostname form whose host holds
// user info ("@"), are answered 404 rather than forwarded; a request whose
// Content-Length is over maxRequestBody is answered 413 before its body is
// read.
//
// # Not done
//
// `taskclusterProxyInterface: "docker-bridge"` (listening on a docker
// bridge for tasks that start their own containers) is malformed-payload;
// only "localhost" (the default) is served. Any local process can reach a
// run's loopback port, as with generic-worker's insecure engine.
package taskclusterproxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/plugins"
	"github.com/workergen/workergen/task"
	"github.com/workergen/workergen/taskcluster"
)

// EnvProxyURL is the variable that tells the task where the proxy is.
const EnvProxyURL = "TASKCLUSTER_PROXY_URL"

// Config is the plugin's worker config section (`plugins.taskclusterproxy`).
type Config struct {
	// MaxRequestBody bounds the body of one proxied request, in bytes (it
	// is held in memory to replay retries); absent (0) means
	// DefaultMaxRequestBody.
	MaxRequestBody int64 `json:"maxRequestBody,omitempty"`
	// Port is the port containers reach the proxy on, with the
	// docker-worker dialect; 0 means 80, the port docker-worker tasks call.
	Port int `json:"port,omitempty"`
}

// HostName is the name docker-worker tasks reach the proxy by.
const HostName = "taskcluster"

// DefaultMaxRequestBody is 16 MiB: Taskcluster API bodies are small JSON
// documents; artifacts go to storage URLs, not through the proxy.
const DefaultMaxRequestBody = 16 << 20

// Payload is the part of the task payload this plugin owns.
type Payload struct {
	Features struct {
		TaskclusterProxy bool `json:"taskclusterProxy"`
	} `json:"features"`
	TaskclusterProxyInterface string `json:"taskclusterProxyInterface"`
}

type plugin struct {
	cfg    Config
	logger *slog.Logger
	skew   *taskcluster.ClockSkew // learnt from the deployment's answers, shared by runs
	hub    *hub                   // docker-worker dialect only

	// With the docker-worker dialect: loopback is set when containers share
	// the host's network (each run then gets a loopback port of its own,
	// as with generic-worker); unavailable says why tasks cannot have the
	// proxy on this worker, if they cannot.
	loopback    bool
	unavailable string

	// retry shapes the client's backoff; tests shorten it.
	retryInitial, retryMaxElapsed time.Duration
}

var _ plugins.Plugin = (*plugin)(nil)

// New returns the taskclusterproxy plugin. A negative maxRequestBody is an
// error naming it.
func New(opts plugins.Options) (plugins.Plugin, error) {
	var cfg Config
	if err := plugins.DecodeConfig(opts.Config, &cfg); err != nil {
		return nil, fmt.Errorf("plugins.taskclusterproxy: %w", err)
	}
	if cfg.MaxRequestBody < 0 {
		return nil, fmt.Errorf("plugins.taskclusterproxy.maxRequestBody: %d is negative", cfg.MaxRequestBody)
	}
	if cfg.MaxRequestBody == 0 {
		cfg.MaxRequestBody = DefaultMaxRequestBody
	}
	if cfg.Port < 0 || cfg.Port > 65535 {
		return nil, fmt.Errorf("plugins.taskclusterproxy.port: %d is not a TCP port", cfg.Port)
	}
	if cfg.Port == 0 {
		cfg.Port = 80
	}
	p := &plugin{cfg: cfg, logger: opts.Logger, skew: new(taskcluster.ClockSkew)}
	if p.logger == nil {
		p.logger = slog.Default()
	}
	if opts.Dialect.IsDockerWorker() {
		if err := p.startHub(opts.Engine); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// startHub prepares the docker-worker proxy when the worker starts: it
// asks the engine where containers reach the host and listens there, so
// that an operator sees a problem at once. A port that cannot be had (in
// use, or privileged for a rootless worker) or containers without a
// network do not stop the worker: they are logged, and tasks asking for
// the proxy are malformed-payload saying why.
func (p *plugin) startHub(eng engines.Engine) error {
	ha, ok := eng.(engines.HostAddresser)
	if !ok {
		return fmt.Errorf("plugins.taskclusterproxy: the %s dialect needs an engine whose containers can reach the worker (engines.HostAddresser, the container engine)", task.DialectDockerWorker)
	}
	p.hub = newHub(p.cfg.Port)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ip, err := ha.HostAddress(ctx)
	switch {
	case errors.Is(err, engines.ErrNoHostNetwork):
		p.unavailable = "this worker's containers cannot reach the worker: " + err.Error()
	case err != nil:
		return fmt.Errorf("plugins.taskclusterproxy: %w", err)
	case ip.IsLoopback():
		p.loopback = true
	default:
		if err := p.hub.listen(ctx, ip); err != nil {
			p.unavailable = "this worker could not serve it: " + err.Error()
		}
	}
	if p.unavailable != "" {
		p.logger.Warn("taskcluster proxy unavailable: tasks with features.taskclusterProxy will be malformed-payload", "reason", p.unavailable)
	}
	return nil
}

// Close stops the containers' proxy servers; each loopback proxy ended
// with its run.
func (p *plugin) Close() error {
	if p.hub != nil {
		p.hub.close()
	}
	return nil
}

// NewTaskPlugin reads features.taskclusterProxy and
// taskclusterProxyInterface.
func (p *plugin) NewTaskPlugin(_ context.Context, tc *task.Context) (plugins.TaskPlugin, error) {
	var pl Payload
	if err := plugins.DecodePayloadField(tc.Definition.Payload, "features", &pl.Features); err != nil {
		return nil, err
	}
	if err := plugins.DecodePayloadField(tc.Definition.Payload, "taskclusterProxyInterface", &pl.TaskclusterProxyInterface); err != nil {
		return nil, err
	}
	if !pl.Features.TaskclusterProxy {
		return plugins.Base{}, nil
	}
	if p.hub != nil {
		if p.unavailable != "" {
			return nil, task.MalformedPayloadf("payload.features.taskclusterProxy: %s", p.unavailable)
		}
		return &containerTaskPlugin{p: p, tc: tc}, nil
	}
	switch pl.TaskclusterProxyInterface {
	case "", "localhost":
	default:
		return nil, task.MalformedPayloadf("payload.taskclusterProxyInterface: %q is not supported by this worker; use \"localhost\" (the default), which the task reaches at $%s", pl.TaskclusterProxyInterface, EnvProxyURL)
	}
	return &taskPlugin{p: p, tc: tc}, nil
}

type taskPlugin struct {
	plugins.Base
	p   *plugin
	tc  *task.Context
	srv *http.Server
	url string
}

// Prepare starts the run's proxy on a loopback port.
func (t *taskPlugin) Prepare(context.Context) error {
	port, err := t.serveLoopback()
	if err != nil {
		return err
	}
	t.url = fmt.Sprintf("http://127.0.0.1:%d", port)
	t.tc.Logf("[taskcluster-proxy] serving at %s (%s=%s), %s", t.url, EnvProxyURL, t.url, servesWhat(t.tc))
	return nil
}

// serveLoopback starts the run's own server on a loopback port.
func (t *taskPlugin) serveLoopback() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, task.InternalError(fmt.Errorf("taskcluster proxy: listening on loopback: %w", err))
	}
	t.srv = &http.Server{Handler: t.p.handler(t.tc), ReadHeaderTimeout: time.Minute}
	if u := t.tc.RunUser(); u != nil && !u.CurrentUser && peerCheck {
		onlyUser(t.srv, u)
	}
	go func() { _ = t.srv.Serve(l) }()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func servesWhat(tc *task.Context) string {
	switch {
	case tc.Worker.RootURL == "":
		return "with no Taskcluster deployment to reach (run mode): requests get 503"
	case tc.Credentials == nil || tc.Credentials() == nil:
		return "forwarding requests unsigned to " + tc.Worker.RootURL + " (this run has no Taskcluster credentials)"
	}
	return "signing requests with the task's credentials for " + tc.Worker.RootURL
}

// handler is the proxy of one run.
func (p *plugin) handler(tc *task.Context) *handler {
	return &handler{
		rootURL: tc.Worker.RootURL,
		client:  p.client(tc),
		maxBody: p.cfg.MaxRequestBody,
		logger:  p.logger.With("taskId", tc.TaskID, "runId", tc.RunID),
		creds:   tc.Credentials,
	}
}

// BuildSandbox sets TASKCLUSTER_PROXY_URL.
func (t *taskPlugin) BuildSandbox(_ context.Context, b engines.SandboxBuilder) error {
	return setProxyURL(b, t.url)
}

func setProxyURL(b engines.SandboxBuilder, url string) error {
	if err := b.SetEnv(EnvProxyURL, url); err != nil {
		if errors.Is(err, engines.ErrEnvConflict) {
			return task.MalformedPayloadf("payload.env: %s is set by the taskcluster proxy feature; remove it from env", EnvProxyURL)
		}
		return task.InternalError(fmt.Errorf("setting %s: %w", EnvProxyURL, err))
	}
	return nil
}

// containerTaskPlugin is a run of a docker-worker task: the container
// reaches the proxy as http://taskcluster, the worker host's address on
// its network, where the plugin's hub serves every run by the address its
// requests come from.
type containerTaskPlugin struct {
	plugins.Base
	p     *plugin
	tc    *task.Context
	h     *handler
	addr  netip.Addr  // the sandbox's, once started
	local *taskPlugin // on the host's network: the run's own loopback server
}

// BuildSandbox maps the name taskcluster to the worker host, makes sure the
// hub listens there and sets TASKCLUSTER_PROXY_URL.
func (t *containerTaskPlugin) BuildSandbox(ctx context.Context, b engines.SandboxBuilder) error {
	hb, ok := b.(engines.HostNameBuilder)
	if !ok {
		return task.InternalError(errors.New("taskcluster proxy: the engine cannot give its tasks a host name for the worker (engines.HostNameBuilder); the docker-worker dialect needs the container engine"))
	}
	ip, err := hb.AddHostName(ctx, HostName)
	if errors.Is(err, engines.ErrNoHostNetwork) {
		return task.MalformedPayloadf("payload.features.taskclusterProxy: this worker's containers cannot reach the worker (%v)", err)
	}
	if err != nil {
		return task.InternalError(fmt.Errorf("taskcluster proxy: %w", err))
	}
	if t.p.loopback || ip.IsLoopback() {
		// Containers share the host's network: connections would all come
		// from 127.0.0.1, so the run gets a port of its own instead.
		t.local = &taskPlugin{p: t.p, tc: t.tc}
		port, err := t.local.serveLoopback()
		if err != nil {
			return err
		}
		url := fmt.Sprintf("http://%s:%d", HostName, port)
		t.tc.Logf("[taskcluster-proxy] serving at %s (the host's network: a loopback port of this run's own), %s", url, servesWhat(t.tc))
		return setProxyURL(b, url)
	}
	if err := t.p.hub.listen(ctx, ip); err != nil {
		return task.MalformedPayloadf("payload.features.taskclusterProxy: this worker could not serve it: %v", err)
	}
	url := "http://" + HostName
	if t.p.cfg.Port != 80 {
		url += fmt.Sprintf(":%d", t.p.cfg.Port)
	}
	t.h = t.p.handler(t.tc)
	t.tc.Logf("[taskcluster-proxy] serving at %s (%s on the worker host), %s", url, netip.AddrPortFrom(ip, uint16(t.p.cfg.Port)), servesWhat(t.tc))
	return setProxyURL(b, url)
}

// Started tells the hub the container's address, so its requests reach this
// run's proxy. A container that ended before its address could be read
// (a quick task) needs no proxy: that is logged, and the run goes on.
func (t *containerTaskPlugin) Started(ctx context.Context, s engines.Sandbox) error {
	if t.local != nil {
		return nil
	}
	as, ok := s.(engines.AddressedSandbox)
	if !ok {
		return task.InternalError(errors.New("taskcluster proxy: the engine does not tell a sandbox's address (engines.AddressedSandbox)"))
	}
	addr, err := as.Address(ctx)
	if err != nil {
		t.tc.Logf("[taskcluster-proxy] not serving this task: %v", err)
		return nil
	}
	t.addr = addr
	if !t.p.hub.register(addr, t.h) {
		t.tc.Logf("[taskcluster-proxy] another running task has this task's address %s (containers on the host's network): requests from it are refused until one of them ends", addr)
	}
	return nil
}

// Dispose forgets the container's address (or stops the run's own
// loopback server).
func (t *containerTaskPlugin) Dispose(ctx context.Context) error {
	if t.local != nil {
		return t.local.Dispose(ctx)
	}
	if t.addr.IsValid() {
		t.p.hub.unregister(t.addr, t.h)
	}
	return nil
}

// Dispose stops the proxy; requests still in flight are cut.
func (t *taskPlugin) Dispose(context.Context) error {
	if t.srv != nil {
		_ = t.srv.Close()
	}
	return nil
}

// client signs with the run's current task credentials.
func (p *plugin) client(tc *task.Context) *taskcluster.Client {
	return &taskcluster.Client{
		RootURL:         tc.Worker.RootURL,
		Credentials:     tc.Credentials,
		InitialInterval: p.retryInitial,
		MaxElapsedTime:  p.retryMaxElapsed,
		Logger:          p.logger,
		Skew:            p.skew,
	}
}

// peerKey is the context key of a connection's peer check (peerResult).
type peerKey struct{}

type peerResult struct {
	uid int
	err error
}

// onlyUser makes srv answer only connections from the run's task user u
// (multiuser mode): another run's task, or any other local user, gets 403.
// The peer's uid is looked up once per connection (peerUID).
func onlyUser(srv *http.Server, u *task.User) {
	next := srv.Handler
	srv.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		uid, err := peerUID(c)
		return context.WithValue(ctx, peerKey{}, peerResult{uid, err})
	}
	srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := r.Context().Value(peerKey{}).(peerResult)
		if p.err != nil || p.uid != u.UID {
			http.Error(w, fmt.Sprintf("taskcluster proxy: this proxy serves only the processes of task user %s", u.Name), http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}
