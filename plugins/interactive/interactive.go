// Package interactive is the interactive-shell plugin (payload
// `features.interactive`, in generic-worker's and docker-worker's payload
// formats): while the task runs, a developer opens a shell in its
// environment (native: a pseudo-terminal in the task directory with the
// task's environment; containers: an exec with a TTY in the task's
// container) from Taskcluster's web UI.
//
// The worker serves one websocket listener for all runs
// (plugins.interactive.port). Each run gets a random secret; the socket is
// ws://<publicHostName>:<port>/shell/<secret>. It is published the way
// generic-worker publishes it, so the UI connects unchanged: a reference
// artifact private/generic-worker/shell.html (docker-worker payloads:
// private/docker-worker/shell.html; the UI picks any artifact ending in
// shell.html) redirecting to <rootUrl>/shell/?v=2&socketUrl=...&taskId=...
// &runId=..., the UI's shell page. Protocol version 2 (generic-worker's;
// the UI no longer speaks docker-worker's version 1), each message binary:
//
//	server -> client  terminal output bytes
//	client -> server  0x01 <bytes>                        typed input
//	                  0x02 <rows uint16 LE> <cols uint16 LE> terminal size
//
// A wrong secret is answered 401 before any upgrade. The session ends when
// the task ends (the engine stops the shell; the socket is closed with
// status 1000), so maxRunTime still bounds it.
package interactive

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/workergen/workergen/plugins"
	"github.com/workergen/workergen/task"
)

// Artifact names, per dialect.
const (
	GenericWorkerArtifact = "private/generic-worker/shell.html"
	DockerWorkerArtifact  = "private/docker-worker/shell.html"
	// DefaultPort is generic-worker's interactivePort default.
	DefaultPort = 53654
)

// Config is the plugin's config section (`plugins.interactive`).
type Config struct {
	// Enable serves interactive shells; without it tasks asking for one
	// are malformed-payload.
	Enable bool `json:"enable"`
	// Port is the TCP port of the websocket listener (all interfaces);
	// 0 means DefaultPort. Tests use -1 for a free port.
	Port int `json:"port"`
	// PublicHostName is the host name (or address) browsers reach the
	// worker at; empty means the machine's host name.
	PublicHostName string `json:"publicHostName"`
}

// Plugin is the interactive plugin.
type Plugin struct {
	cfg     Config
	dialect task.Dialect
	rootURL string
	logger  *slog.Logger

	ln  net.Listener
	srv *http.Server
	mu  sync.Mutex
	// runs maps the hex sha256 of a run's secret to the run.
	runs map[string]*taskPlugin
}

var _ plugins.Plugin = (*Plugin)(nil)

// New starts the websocket listener when the config enables the plugin.
// Errors name the config field (a port that cannot be listened on).
func New(opts plugins.Options) (plugins.Plugin, error) {
	var cfg Config
	if err := plugins.DecodeConfig(opts.Config, &cfg); err != nil {
		return nil, fmt.Errorf("plugins.interactive: %w", err)
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	p := &Plugin{cfg: cfg, dialect: opts.Dialect, rootURL: opts.Worker.RootURL, logger: logger, runs: map[string]*taskPlugin{}}
	if !cfg.Enable {
		return p, nil
	}
	port := cfg.Port
	switch {
	case port == 0:
		port = DefaultPort
	case port < 0:
		port = 0
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("", strconv.Itoa(port)))
	if err != nil {
		return nil, fmt.Errorf("plugins.interactive.port: %w", err)
	}
	if p.cfg.PublicHostName == "" {
		if p.cfg.PublicHostName, err = os.Hostname(); err != nil {
			ln.Close()
			return nil, fmt.Errorf("plugins.interactive.publicHostName: not set and the host name is unknown: %w", err)
		}
	}
	p.ln = ln
	mux := http.NewServeMux()
	mux.HandleFunc("/shell/", p.serveShell)
	p.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 30 * time.Second}
	go func() {
		if err := p.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("interactive: websocket listener stopped", "error", err)
		}
	}()
	return p, nil
}

// Addr is the listener's address, or nil when the plugin is not enabled.
func (p *Plugin) Addr() net.Addr {
	if p.ln == nil {
		return nil
	}
	return p.ln.Addr()
}

// Close stops the listener and ends every session.
func (p *Plugin) Close() error {
	if p.srv == nil {
		return nil
	}
	return p.srv.Close()
}

// NewTaskPlugin reads payload.features.interactive (and maxRunTime, for the
// artifact's expiry) and reserves the shell artifact's name.
func (p *Plugin) NewTaskPlugin(_ context.Context, tc *task.Context) (plugins.TaskPlugin, error) {
	var features struct {
		Interactive bool `json:"interactive"`
	}
	if err := plugins.DecodePayloadField(tc.Definition.Payload, "features", &features); err != nil {
		return nil, err
	}
	if !features.Interactive {
		return plugins.Base{}, nil
	}
	if p.ln == nil {
		return nil, task.MalformedPayloadf("payload.features.interactive: this worker does not offer interactive shells (its operator sets plugins.interactive.enable)")
	}
	var maxRunTime int
	_ = plugins.DecodePayloadField(tc.Definition.Payload, "maxRunTime", &maxRunTime) // the maxruntime plugin reports a bad value
	name := GenericWorkerArtifact
	if p.dialect.IsDockerWorker() {
		name = DockerWorkerArtifact
	}
	if err := tc.ReserveArtifactName(name, "payload.features.interactive"); err != nil {
		return nil, task.MalformedPayload(err.Error())
	}
	return &taskPlugin{p: p, tc: tc, artifact: name, maxRunTime: maxRunTime}, nil
}

// newSecret returns a random URL-safe secret (22 characters, 128 bits).
func newSecret() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func secretKey(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return string(h[:])
}

// register makes t reachable under its secret.
func (p *Plugin) register(t *taskPlugin) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.runs[secretKey(t.secret)] = t
}

func (p *Plugin) unregister(t *taskPlugin) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.runs, secretKey(t.secret))
}

// socketURL is the websocket URL of a run's secret.
func (p *Plugin) socketURL(secret string) string {
	_, port, _ := net.SplitHostPort(p.ln.Addr().String())
	return "ws://" + net.JoinHostPort(p.cfg.PublicHostName, port) + "/shell/" + secret
}

// shellPageURL is the UI's shell page for a run (ui routes `/shell/`).
func (p *Plugin) shellPageURL(tc *task.Context, socket string) string {
	q := url.Values{}
	q.Set("v", "2")
	q.Set("socketUrl", socket)
	q.Set("taskId", tc.TaskID)
	q.Set("runId", strconv.Itoa(tc.RunID))
	return strings.TrimSuffix(p.rootURL, "/") + "/shell/?" + q.Encode()
}
