package runnertest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/workergen/workergen/taskcluster"
)

// StaticWorker configures WorkerRunner: what worker-runner's runner config
// would say for a static-provider pool with `implementation:
// generic-worker` (references/worker-runner/runner-configuration.mdx,
// workers.mdx, providers.mdx).
type StaticWorker struct {
	// Client is the template of worker-manager calls (RootURL, Now, ...);
	// its Credentials are replaced by the worker's.
	Client taskcluster.Client
	// WorkerPoolID, WorkerGroup, WorkerID and StaticSecret identify the
	// static worker (provider.workerPoolID, workerGroup, workerID,
	// staticSecret).
	WorkerPoolID, WorkerGroup, WorkerID, StaticSecret string
	// WorkerConfig is the runner config's workerConfig: the lowest
	// precedence, under the registered pool's workerConfig.
	WorkerConfig map[string]any
	// Path is worker.path, the worker binary; ConfigPath is
	// worker.configPath, where the generic-worker config is written.
	Path, ConfigPath string
	// Env, when set, is the worker's environment; Stderr receives its
	// stderr.
	Env    []string
	Stderr io.Writer
	// Options configure the protocol side; OnMessage is called after the
	// runner's own handling.
	Options Options
}

// WorkerRunner is a static worker started as worker-runner starts
// generic-worker: it registers with worker-manager, writes generic-worker's
// config file (the runner's workerConfig, the pool's, then the keys the
// runner sets: rootURL, clientId, accessToken, certificate, provisionerId,
// workerType, workerGroup, workerId, workerLocation {"cloud":"static"},
// workerTypeMetadata), runs `<path> run --config <configPath>
// --with-worker-runner`, and handles the worker's messages: `shutdown`
// calls removeWorker, `error-report` calls reportWorkerError (errors of
// those calls are kept in CallErrors).
type WorkerRunner struct {
	*Runner
	cfg  StaticWorker
	wm   *taskcluster.WorkerManager
	mu   sync.Mutex
	reg  *taskcluster.RegisterWorkerResponse
	errs []error
	// Config is the generic-worker config written to ConfigPath.
	Config map[string]any
}

// StartStaticWorker registers the worker and starts it (see WorkerRunner).
func StartStaticWorker(ctx context.Context, cfg StaticWorker) (*WorkerRunner, error) {
	anon := cfg.Client
	anon.Credentials = nil
	reg, err := anon.WorkerManager().RegisterWorker(ctx, &taskcluster.RegisterWorkerRequest{
		WorkerPoolID: cfg.WorkerPoolID, ProviderID: "static", WorkerGroup: cfg.WorkerGroup, WorkerID: cfg.WorkerID,
		WorkerIdentityProof: json.RawMessage(fmt.Sprintf(`{"staticSecret":%q}`, cfg.StaticSecret)),
	})
	if err != nil {
		return nil, fmt.Errorf("runnertest: registering worker: %w", err)
	}
	wr := &WorkerRunner{cfg: cfg, reg: reg}
	client := cfg.Client
	client.Credentials = wr.credentials
	wr.wm = client.WorkerManager()
	if wr.Config, err = genericWorkerConfig(cfg, reg); err != nil {
		return nil, err
	}
	data, err := json.MarshalIndent(wr.Config, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("runnertest: encoding worker config: %w", err)
	}
	if err := os.WriteFile(cfg.ConfigPath, data, 0o600); err != nil {
		return nil, fmt.Errorf("runnertest: writing worker config: %w", err)
	}
	cmd := exec.Command(cfg.Path, "run", "--config", cfg.ConfigPath, "--with-worker-runner")
	cmd.Env, cmd.Stderr = cfg.Env, cfg.Stderr
	opts := cfg.Options
	user := opts.OnMessage
	opts.OnMessage = func(m Message) {
		wr.handle(m)
		if user != nil {
			user(m)
		}
	}
	r, err := Start(cmd, opts)
	wr.Runner = r
	return wr, err
}

func (wr *WorkerRunner) credentials() *taskcluster.Credentials {
	wr.mu.Lock()
	defer wr.mu.Unlock()
	c := wr.reg.Credentials
	return &c
}

// Credentials returns the worker's current credentials.
func (wr *WorkerRunner) Credentials() taskcluster.Credentials { return *wr.credentials() }

// genericWorkerConfig merges the worker config as worker-runner does.
func genericWorkerConfig(cfg StaticWorker, reg *taskcluster.RegisterWorkerResponse) (map[string]any, error) {
	out := maps.Clone(cfg.WorkerConfig)
	if out == nil {
		out = map[string]any{}
	}
	var pool map[string]any
	if len(reg.WorkerConfig) > 0 {
		if err := json.Unmarshal(reg.WorkerConfig, &pool); err != nil {
			return nil, fmt.Errorf("runnertest: registered workerConfig: %w", err)
		}
	}
	// The nested form <workerImplementation>.config, or the legacy flat one.
	if gw, ok := pool["genericWorker"].(map[string]any); ok {
		pool, _ = gw["config"].(map[string]any)
	}
	maps.Copy(out, pool)
	prov, wt, ok := strings.Cut(cfg.WorkerPoolID, "/")
	if !ok {
		return nil, fmt.Errorf("runnertest: workerPoolID %q does not contain a slash", cfg.WorkerPoolID)
	}
	meta, _ := out["workerTypeMetadata"].(map[string]any)
	if meta == nil {
		meta = map[string]any{}
	}
	out["workerTypeMetadata"] = meta
	out["workerLocation"] = `{"cloud":"static"}`
	out["rootURL"] = cfg.Client.RootURL
	out["clientId"] = reg.Credentials.ClientID
	out["accessToken"] = reg.Credentials.AccessToken
	out["provisionerId"], out["workerType"] = prov, wt
	out["workerGroup"], out["workerId"] = cfg.WorkerGroup, cfg.WorkerID
	if reg.Credentials.Certificate != "" {
		out["certificate"] = reg.Credentials.Certificate
	}
	return out, nil
}

func (wr *WorkerRunner) handle(m Message) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var err error
	switch m.Type() {
	case "shutdown":
		err = wr.wm.RemoveWorker(ctx, wr.cfg.WorkerPoolID, wr.cfg.WorkerGroup, wr.cfg.WorkerID)
	case "error-report":
		str := func(k string) string { s, _ := m[k].(string); return s }
		extra, _ := json.Marshal(m["extra"])
		if string(extra) == "null" {
			extra = []byte("{}")
		}
		_, err = wr.wm.ReportWorkerError(ctx, wr.cfg.WorkerPoolID, &taskcluster.ReportWorkerErrorRequest{
			WorkerGroup: wr.cfg.WorkerGroup, WorkerID: wr.cfg.WorkerID,
			Kind: str("kind"), Title: str("title"), Description: str("description"), Extra: extra,
		})
	}
	if err != nil {
		wr.mu.Lock()
		wr.errs = append(wr.errs, fmt.Errorf("handling %s: %w", m.Type(), err))
		wr.mu.Unlock()
	}
}

// CallErrors returns the errors of the worker-manager calls made for the
// worker's messages.
func (wr *WorkerRunner) CallErrors() []error {
	wr.mu.Lock()
	defer wr.mu.Unlock()
	return append([]error(nil), wr.errs...)
}

// RenewCredentials does what worker-runner does before the worker's
// credentials expire: reregisterWorker, then `new-credentials` to the
// worker. It returns the credentials replaced and the new ones; the
// runner's own later calls use the new ones.
func (wr *WorkerRunner) RenewCredentials(ctx context.Context) (old, renewed taskcluster.Credentials, err error) {
	wr.mu.Lock()
	secret := wr.reg.Secret
	old = wr.reg.Credentials
	wr.mu.Unlock()
	rr, err := wr.wm.ReregisterWorker(ctx, &taskcluster.ReregisterWorkerRequest{
		WorkerPoolID: wr.cfg.WorkerPoolID, WorkerGroup: wr.cfg.WorkerGroup, WorkerID: wr.cfg.WorkerID, Secret: secret,
	})
	if err != nil {
		return old, old, fmt.Errorf("runnertest: reregistering: %w", err)
	}
	wr.mu.Lock()
	wr.reg.Credentials, wr.reg.Secret, wr.reg.Expires = rr.Credentials, rr.Secret, rr.Expires
	wr.mu.Unlock()
	if !wr.Capable("new-credentials") {
		return old, rr.Credentials, errors.New("runnertest: the worker did not agree to new-credentials")
	}
	return old, rr.Credentials, wr.NewCredentials(rr.Credentials.ClientID, rr.Credentials.AccessToken, rr.Credentials.Certificate)
}
