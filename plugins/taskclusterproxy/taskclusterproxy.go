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
// # Not done
//
// `taskclusterProxyInterface: "docker-bridge"` (listening on a docker
// bridge for tasks that start their own containers) is malformed-payload;
// only "localhost" (the default) is served. The container engine does not
// take this plugin: docker-worker's proxy is a linked container.
package taskclusterproxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
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
	// is held in memory to replay retries); 0 means DefaultMaxRequestBody.
	MaxRequestBody int64 `json:"maxRequestBody,omitempty"`
}

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
	p := &plugin{cfg: cfg, logger: opts.Logger, skew: new(taskcluster.ClockSkew)}
	if p.logger == nil {
		p.logger = slog.Default()
	}
	return p, nil
}

// Close does nothing: each run's proxy ends with the run.
func (*plugin) Close() error { return nil }

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
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return task.InternalError(fmt.Errorf("taskcluster proxy: listening on loopback: %w", err))
	}
	h := &handler{
		rootURL: t.tc.Worker.RootURL,
		client:  t.p.client(t.tc),
		maxBody: t.p.cfg.MaxRequestBody,
		logger:  t.p.logger.With("taskId", t.tc.TaskID, "runId", t.tc.RunID),
		creds:   t.tc.Credentials,
	}
	t.srv = &http.Server{Handler: h, ReadHeaderTimeout: time.Minute}
	t.url = "http://" + l.Addr().String()
	go func() { _ = t.srv.Serve(l) }()
	where := "signing requests with the task's credentials for " + t.tc.Worker.RootURL
	if t.tc.Worker.RootURL == "" {
		where = "with no Taskcluster deployment to reach (run mode): requests get 503"
	}
	t.tc.Logf("[taskcluster-proxy] serving at %s (%s=%s), %s", t.url, EnvProxyURL, t.url, where)
	return nil
}

// BuildSandbox sets TASKCLUSTER_PROXY_URL.
func (t *taskPlugin) BuildSandbox(_ context.Context, b engines.SandboxBuilder) error {
	if err := b.SetEnv(EnvProxyURL, t.url); err != nil {
		if errors.Is(err, engines.ErrEnvConflict) {
			return task.MalformedPayloadf("payload.env: %s is set by the taskcluster proxy feature; remove it from env", EnvProxyURL)
		}
		return task.InternalError(fmt.Errorf("setting %s: %w", EnvProxyURL, err))
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
		Credentials:     plugins.TaskCredentials(tc),
		InitialInterval: p.retryInitial,
		MaxElapsedTime:  p.retryMaxElapsed,
		Logger:          p.logger,
		Skew:            p.skew,
	}
}
