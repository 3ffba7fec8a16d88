package localqueue

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"sync"
	"time"

	"github.com/workergen/workergen/taskcluster/hawk"
)

// The embedded worker-manager: the endpoints a worker and worker-runner
// call for a static worker pool (references/worker-manager/v1/api.json),
// served at <base>/api/worker-manager/v1/: registerWorker (providerId
// "static", workerIdentityProof {"staticSecret": ...}), reregisterWorker,
// shouldWorkerTerminate, removeWorker, reportWorkerError,
// listWorkerPoolErrors and ping. Pools and workers are made with
// CreateWorkerPool and CreateStaticWorker (there is no createWorkerPool or
// createWorker endpoint). Its state lives in memory only: a Server started
// again on the same Dir has no pools, workers or errors.
//
// registerWorker and reregisterWorker issue temporary credentials as
// worker-manager does: clientId
// worker/static/<workerPoolId>/<workerGroup>/<workerId>, with the worker's
// scopes (WorkerScopes), valid for the pool's CredentialsLifetime. Each
// issue has its own issuer, so RevokeCredentials can make exactly those
// credentials fail (401) while later ones keep working.

// DefaultCredentialsLifetime is how long worker credentials last when
// WorkerPool.CredentialsLifetime is 0: worker-manager's default
// reregistrationTimeout, 96 hours.
const DefaultCredentialsLifetime = 96 * time.Hour

// Worker states, as worker-manager names them.
const (
	WorkerRequested = "requested"
	WorkerRunning   = "running"
	WorkerStopped   = "stopped"
)

// WorkerPool is a worker pool of the static provider.
type WorkerPool struct {
	// WorkerPoolID is "<provisionerId>/<workerType>".
	WorkerPoolID string
	// WorkerConfig is registerWorker's workerConfig (nil: {}).
	WorkerConfig map[string]any
	// CredentialsLifetime bounds registered credentials (0:
	// DefaultCredentialsLifetime).
	CredentialsLifetime time.Duration
}

// IssuedCredentials describes one set of credentials registerWorker or
// reregisterWorker issued.
type IssuedCredentials struct {
	ClientID string
	// Issuer is the clientId of the issuer made for these credentials.
	Issuer  string
	Issued  time.Time
	Expires time.Time
	// FirstUsed is when a request first authenticated with them (zero:
	// never).
	FirstUsed time.Time
	Revoked   bool
}

// ManagedWorker is a worker as the embedded worker-manager knows it.
type ManagedWorker struct {
	WorkerPoolID string
	WorkerGroup  string
	WorkerID     string
	// State is WorkerRequested, WorkerRunning (registered) or
	// WorkerStopped (removeWorker).
	State string
	// Credentials are those issued so far, oldest first.
	Credentials []IssuedCredentials
}

// WorkerPoolError is an error reported with reportWorkerError
// (worker-pool-error.json).
type WorkerPoolError struct {
	ErrorID      string         `json:"errorId"`
	WorkerPoolID string         `json:"workerPoolId"`
	Reported     time.Time      `json:"-"`
	Kind         string         `json:"kind"`
	Title        string         `json:"title"`
	Description  string         `json:"description"`
	Extra        map[string]any `json:"extra"`
	WorkerGroup  string         `json:"workerGroup"`
	WorkerID     string         `json:"workerId"`
}

// MarshalJSON writes reported with millisecond precision.
func (e WorkerPoolError) MarshalJSON() ([]byte, error) {
	type plain WorkerPoolError
	return json.Marshal(struct {
		plain
		Reported string `json:"reported"`
	}{plain(e), fmtTime(e.Reported)})
}

// wmState is the worker-manager's state; its zero value is empty.
type wmState struct {
	mu      sync.Mutex
	pools   map[string]WorkerPool
	workers map[string]*wmWorker // key workerKey
	issuers map[string]*wmIssuer // issuer clientId
	errors  []WorkerPoolError
}

type wmWorker struct {
	ManagedWorker
	staticSecret string
	secret       string // for reregisterWorker
	terminate    *bool
	reason       string
}

type wmIssuer struct {
	key    string
	scopes []string
	worker *wmWorker
	index  int // in worker.Credentials
}

func workerKey(pool, group, id string) string { return pool + "/" + group + "/" + id }

func (w *wmState) init() {
	if w.pools == nil {
		w.pools = map[string]WorkerPool{}
		w.workers = map[string]*wmWorker{}
		w.issuers = map[string]*wmIssuer{}
	}
}

var staticSecretPattern = regexp.MustCompile(`^[a-zA-Z0-9_-]{44}$`)

// CreateWorkerPool adds or replaces a static worker pool.
func (s *Server) CreateWorkerPool(p WorkerPool) error {
	if !taskQueuePattern.MatchString(p.WorkerPoolID) {
		return errInput("invalid workerPoolId %q", p.WorkerPoolID)
	}
	s.wm.mu.Lock()
	defer s.wm.mu.Unlock()
	s.wm.init()
	s.wm.pools[p.WorkerPoolID] = p
	return nil
}

var taskQueuePattern = regexp.MustCompile(`^[a-zA-Z0-9-_]{1,38}/[a-z]([-a-z0-9]{0,36}[a-z0-9])?$`)

// CreateStaticWorker adds (or resets to requested) a worker of a pool made
// with CreateWorkerPool; registerWorker then needs staticSecret (44
// characters of [a-zA-Z0-9_-], e.g. hawk.NewSeed()).
func (s *Server) CreateStaticWorker(workerPoolID, workerGroup, workerID, staticSecret string) error {
	if !staticSecretPattern.MatchString(staticSecret) {
		return errInput("staticSecret must be 44 characters of [a-zA-Z0-9_-]")
	}
	s.wm.mu.Lock()
	defer s.wm.mu.Unlock()
	s.wm.init()
	if _, ok := s.wm.pools[workerPoolID]; !ok {
		return errNotFound("worker pool %s does not exist", workerPoolID)
	}
	s.wm.workers[workerKey(workerPoolID, workerGroup, workerID)] = &wmWorker{
		ManagedWorker: ManagedWorker{WorkerPoolID: workerPoolID, WorkerGroup: workerGroup, WorkerID: workerID, State: WorkerRequested},
		staticSecret:  staticSecret,
	}
	return nil
}

// SetShouldTerminate fixes shouldWorkerTerminate's answer for a worker.
// Without it the answer is to terminate unless the worker is running.
func (s *Server) SetShouldTerminate(workerPoolID, workerGroup, workerID string, terminate bool, reason string) error {
	s.wm.mu.Lock()
	defer s.wm.mu.Unlock()
	w, err := s.wm.worker(workerPoolID, workerGroup, workerID)
	if err != nil {
		return err
	}
	w.terminate, w.reason = &terminate, reason
	return nil
}

// RevokeCredentials makes credentials issued by registerWorker or
// reregisterWorker fail authentication from now on (401). Other
// credentials of the same worker are unaffected. It fails with ErrNotFound
// for credentials the worker-manager did not issue.
func (s *Server) RevokeCredentials(c Credentials) error {
	cert, err := hawk.ParseCertificate([]byte(c.Certificate))
	if c.Certificate == "" || err != nil {
		return errNotFound("credentials of %q are not temporary credentials of the worker-manager", c.ClientID)
	}
	s.wm.mu.Lock()
	defer s.wm.mu.Unlock()
	iss, ok := s.wm.issuers[cert.IssuerFor(c.ClientID)]
	if !ok {
		return errNotFound("credentials of %q were not issued by the worker-manager", c.ClientID)
	}
	iss.worker.Credentials[iss.index].Revoked = true
	delete(s.wm.issuers, cert.IssuerFor(c.ClientID))
	return nil
}

// Worker returns a worker's state and issued credentials.
func (s *Server) Worker(workerPoolID, workerGroup, workerID string) (ManagedWorker, error) {
	s.wm.mu.Lock()
	defer s.wm.mu.Unlock()
	w, err := s.wm.worker(workerPoolID, workerGroup, workerID)
	if err != nil {
		return ManagedWorker{}, err
	}
	out := w.ManagedWorker
	out.Credentials = append([]IssuedCredentials(nil), w.Credentials...)
	return out, nil
}

// WorkerPoolErrors returns the errors reported for a pool, oldest first.
func (s *Server) WorkerPoolErrors(workerPoolID string) []WorkerPoolError {
	s.wm.mu.Lock()
	defer s.wm.mu.Unlock()
	var out []WorkerPoolError
	for _, e := range s.wm.errors {
		if e.WorkerPoolID == workerPoolID {
			out = append(out, e)
		}
	}
	return out
}

func (w *wmState) worker(pool, group, id string) (*wmWorker, error) {
	w.init()
	wk, ok := w.workers[workerKey(pool, group, id)]
	if !ok {
		return nil, errNotFound("worker %s/%s/%s does not exist", pool, group, id)
	}
	return wk, nil
}

// lookupIssuer finds a worker-manager issuer for hawk authentication,
// noting the first use of its credentials.
func (s *Server) lookupIssuer(clientID string) (hawk.Client, bool) {
	s.wm.mu.Lock()
	defer s.wm.mu.Unlock()
	iss, ok := s.wm.issuers[clientID]
	if !ok {
		return hawk.Client{}, false
	}
	if c := &iss.worker.Credentials[iss.index]; c.FirstUsed.IsZero() {
		c.FirstUsed = s.now()
	}
	return hawk.Client{AccessToken: iss.key, Scopes: iss.scopes}, true
}

// WorkerScopes are the scopes of credentials registerWorker issues (roles
// written out): worker-manager's assume:worker-pool and assume:worker-id,
// the Queue scopes they stand for, the worker-manager scopes of the
// worker's own calls, and auth:expand-scopes (tasks' roles).
func WorkerScopes(workerPoolID, workerGroup, workerID string) []string {
	w := workerPoolID + "/" + workerGroup + "/" + workerID
	return []string{
		"assume:worker-pool:" + workerPoolID,
		"assume:worker-id:" + workerGroup + "/" + workerID,
		"auth:expand-scopes",
		"queue:claim-work:" + workerPoolID,
		"queue:worker-id:" + workerGroup + "/" + workerID,
		"secrets:get:worker-pool:" + workerPoolID,
		"worker-manager:reregister-worker:" + w,
		"worker-manager:remove-worker:" + w,
		"worker-manager:should-worker-terminate:" + w,
	}
}

// issue makes new credentials and a new reregistration secret for w;
// s.wm.mu is held.
func (s *Server) issue(w *wmWorker) (Credentials, time.Time, error) {
	pool := s.wm.pools[w.WorkerPoolID]
	lifetime := pool.CredentialsLifetime
	if lifetime <= 0 {
		lifetime = DefaultCredentialsLifetime
	}
	now := s.now()
	expires := now.Add(lifetime)
	name := "worker/static/" + workerKey(w.WorkerPoolID, w.WorkerGroup, w.WorkerID)
	scopes := WorkerScopes(w.WorkerPoolID, w.WorkerGroup, w.WorkerID)
	issuer := hawk.Credentials{ClientID: IssuerClientID + "/worker-manager/" + NewTaskID(), AccessToken: hawk.NewSeed()}
	c, err := hawk.CreateTemporaryCredentials(issuer, name, scopes, now, expires)
	if err != nil {
		return Credentials{}, time.Time{}, fmt.Errorf("issuing worker credentials: %w", err)
	}
	w.Credentials = append(w.Credentials, IssuedCredentials{ClientID: name, Issuer: issuer.ClientID, Issued: now, Expires: expires})
	s.wm.issuers[issuer.ClientID] = &wmIssuer{
		key: issuer.AccessToken, scopes: append(scopes, "auth:create-client:"+name),
		worker: w, index: len(w.Credentials) - 1,
	}
	w.secret = hawk.NewSeed()
	return Credentials{ClientID: c.ClientID, AccessToken: c.AccessToken, Certificate: c.Certificate}, expires, nil
}

func credentialsJSON(c Credentials) map[string]any {
	out := map[string]any{"clientId": c.ClientID, "accessToken": c.AccessToken}
	if c.Certificate != "" {
		out["certificate"] = c.Certificate
	}
	return out
}

func (s *Server) workerManagerRoutes() []*route {
	wm := func(name, method, path string, scopes any, h func(c *call) error) *route {
		return &route{service: "worker-manager", name: name, method: method, path: path, scopes: scopes, handle: h}
	}
	worker := "<workerPoolId>/<workerGroup>/<workerId>"
	return []*route{
		wm("ping", "get", "/ping", nil, handlePing),
		wm("registerWorker", "post", "/worker/register", nil, handleRegisterWorker),
		wm("reregisterWorker", "post", "/worker/reregister", "worker-manager:reregister-worker:"+worker, handleReregisterWorker),
		wm("shouldWorkerTerminate", "get", "/workers/"+worker+"/should-terminate", "worker-manager:should-worker-terminate:"+worker, handleShouldWorkerTerminate),
		wm("removeWorker", "delete", "/workers/"+worker, "worker-manager:remove-worker:"+worker, handleRemoveWorker),
		wm("reportWorkerError", "post", "/worker-pool-errors/<workerPoolId>", allOf{"assume:worker-pool:<workerPoolId>", "assume:worker-id:<workerGroup>/<workerId>"}, handleReportWorkerError),
		wm("listWorkerPoolErrors", "get", "/worker-pool-errors/<workerPoolId>", "worker-manager:list-worker-pool-errors:<workerPoolId>", handleListWorkerPoolErrors),
	}
}

func handleRegisterWorker(c *call) error {
	var req struct {
		WorkerPoolID        string          `json:"workerPoolId"`
		ProviderID          string          `json:"providerId"`
		WorkerGroup         string          `json:"workerGroup"`
		WorkerID            string          `json:"workerId"`
		WorkerIdentityProof json.RawMessage `json:"workerIdentityProof"`
	}
	if err := c.decode(&req); err != nil {
		return err
	}
	var proof struct {
		StaticSecret string `json:"staticSecret"`
	}
	if req.ProviderID != "static" {
		return errInput("providerId %q: this worker-manager has only the static provider", req.ProviderID)
	}
	if err := json.Unmarshal(req.WorkerIdentityProof, &proof); err != nil || proof.StaticSecret == "" {
		return errInput("workerIdentityProof must be {\"staticSecret\": ...} for the static provider")
	}
	s := c.s
	s.wm.mu.Lock()
	defer s.wm.mu.Unlock()
	w, err := s.wm.worker(req.WorkerPoolID, req.WorkerGroup, req.WorkerID)
	if err != nil {
		return err
	}
	if w.staticSecret != proof.StaticSecret {
		return errInput("workerIdentityProof: bad staticSecret for worker %s/%s", req.WorkerGroup, req.WorkerID)
	}
	if w.State == WorkerStopped {
		return errInput("worker %s/%s is stopped", req.WorkerGroup, req.WorkerID)
	}
	creds, expires, err := s.issue(w)
	if err != nil {
		return err
	}
	w.State = WorkerRunning
	config := s.wm.pools[w.WorkerPoolID].WorkerConfig
	if config == nil {
		config = map[string]any{}
	}
	return c.reply(map[string]any{"expires": fmtTime(expires), "credentials": credentialsJSON(creds), "workerConfig": config, "secret": w.secret})
}

func handleReregisterWorker(c *call) error {
	var req struct {
		WorkerPoolID string `json:"workerPoolId"`
		WorkerGroup  string `json:"workerGroup"`
		WorkerID     string `json:"workerId"`
		Secret       string `json:"secret"`
	}
	if err := c.decode(&req); err != nil {
		return err
	}
	if err := c.authorize(scopeParams{"workerPoolId": req.WorkerPoolID, "workerGroup": req.WorkerGroup, "workerId": req.WorkerID}); err != nil {
		return err
	}
	s := c.s
	s.wm.mu.Lock()
	defer s.wm.mu.Unlock()
	w, err := s.wm.worker(req.WorkerPoolID, req.WorkerGroup, req.WorkerID)
	if err != nil {
		return err
	}
	if w.State != WorkerRunning || w.secret == "" || w.secret != req.Secret {
		return errInput("could not reregister worker %s/%s: not running or wrong secret", req.WorkerGroup, req.WorkerID)
	}
	creds, expires, err := s.issue(w)
	if err != nil {
		return err
	}
	return c.reply(map[string]any{"expires": fmtTime(expires), "credentials": credentialsJSON(creds), "secret": w.secret})
}

// routeWorker authorizes c and returns the worker its route names
// (workerPoolId, workerGroup, workerId) with the worker-manager state
// locked; the caller calls unlock.
func routeWorker(c *call) (w *wmWorker, unlock func(), err error) {
	if err := c.authorize(nil); err != nil {
		return nil, nil, err
	}
	c.s.wm.mu.Lock()
	w, err = c.s.wm.worker(c.param("workerPoolId"), c.param("workerGroup"), c.param("workerId"))
	if err != nil {
		c.s.wm.mu.Unlock()
		return nil, nil, err
	}
	return w, c.s.wm.mu.Unlock, nil
}

func handleShouldWorkerTerminate(c *call) error {
	w, unlock, err := routeWorker(c)
	if err != nil {
		return err
	}
	defer unlock()
	terminate, reason := w.State != WorkerRunning, "worker is "+w.State
	if w.terminate != nil {
		terminate, reason = *w.terminate, w.reason
	}
	if reason == "" {
		reason = fmt.Sprintf("terminate: %t", terminate)
	}
	return c.reply(map[string]any{"terminate": terminate, "reason": reason})
}

func handleRemoveWorker(c *call) error {
	w, unlock, err := routeWorker(c)
	if err != nil {
		return err
	}
	defer unlock()
	w.State = WorkerStopped
	return c.reply(map[string]any{})
}

func handleReportWorkerError(c *call) error {
	var req struct {
		WorkerGroup string          `json:"workerGroup"`
		WorkerID    string          `json:"workerId"`
		Kind        string          `json:"kind"`
		Title       string          `json:"title"`
		Description string          `json:"description"`
		Extra       *map[string]any `json:"extra"`
	}
	if err := c.decode(&req); err != nil {
		return err
	}
	if req.WorkerGroup == "" || req.WorkerID == "" || req.Kind == "" || req.Title == "" || req.Extra == nil {
		return errInput("workerGroup, workerId, kind, title, description and extra (an object) are required")
	}
	if err := c.authorize(scopeParams{"workerGroup": req.WorkerGroup, "workerId": req.WorkerID}); err != nil {
		return err
	}
	s := c.s
	s.wm.mu.Lock()
	defer s.wm.mu.Unlock()
	s.wm.init()
	pool := c.param("workerPoolId")
	if _, ok := s.wm.pools[pool]; !ok {
		return errNotFound("worker pool %s does not exist", pool)
	}
	e := WorkerPoolError{
		ErrorID: NewTaskID(), WorkerPoolID: pool, Reported: s.now(),
		Kind: req.Kind, Title: req.Title, Description: req.Description, Extra: *req.Extra,
		WorkerGroup: req.WorkerGroup, WorkerID: req.WorkerID,
	}
	s.wm.errors = append(s.wm.errors, e)
	return c.reply(e)
}

func handleListWorkerPoolErrors(c *call) error {
	if err := c.authorize(nil); err != nil {
		return err
	}
	s := c.s
	pool := c.param("workerPoolId")
	errorID := c.r.URL.Query().Get("errorId")
	s.wm.mu.Lock()
	var list []WorkerPoolError
	for _, e := range s.wm.errors {
		if e.WorkerPoolID == pool && (errorID == "" || e.ErrorID == errorID) {
			list = append(list, e)
		}
	}
	s.wm.mu.Unlock()
	sort.SliceStable(list, func(i, j int) bool { return list[i].Reported.Before(list[j].Reported) })
	start, end, next, err := page(c, len(list))
	if err != nil {
		return err
	}
	out := map[string]any{"workerPoolErrors": append([]WorkerPoolError{}, list[start:end]...)}
	if next != "" {
		out["continuationToken"] = next
	}
	return c.reply(out)
}
