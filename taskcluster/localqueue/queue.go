package localqueue

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/workergen/workergen/taskcluster"
	"github.com/workergen/workergen/taskcluster/hawk"
	"github.com/workergen/workergen/taskcluster/tcwire"
)

// IssuerClientID is the clientId of the server's own permanent credentials,
// which issue the temporary credentials handed out by claimWork,
// reclaimTask and createArtifact (storageType object). Its accessToken is
// random and kept in the database.
const IssuerClientID = "static/workergen/localqueue"

// Sentinel errors; every error the server returns for a request wraps one
// of them (see apiError), so helpers' callers can branch with errors.Is.
var (
	ErrNotFound = errors.New("resource not found")       // 404 ResourceNotFound
	ErrConflict = errors.New("request conflict")         // 409 RequestConflict
	ErrInput    = errors.New("invalid input")            // 400 InputError
	ErrAuth     = errors.New("authentication failed")    // 401 AuthenticationFailed
	ErrScopes   = errors.New("insufficient scopes")      // 403 InsufficientScopes
	ErrClosed   = errors.New("localqueue server closed") // 503
)

// apiError is a Taskcluster error response: HTTP status, error code and
// message.
type apiError struct {
	status int
	code   string
	msg    string
	kind   error
}

func (e *apiError) Error() string { return e.code + ": " + e.msg }
func (e *apiError) Unwrap() error { return e.kind }

func errNotFound(format string, a ...any) error {
	return &apiError{http.StatusNotFound, "ResourceNotFound", fmt.Sprintf(format, a...), ErrNotFound}
}

func errConflict(format string, a ...any) error {
	return &apiError{http.StatusConflict, "RequestConflict", fmt.Sprintf(format, a...), ErrConflict}
}

func errInput(format string, a ...any) error {
	return &apiError{http.StatusBadRequest, "InputError", fmt.Sprintf(format, a...), ErrInput}
}

// Server is an embedded Taskcluster Queue (and the object-service subset
// workers use). Create it with New, serve Handler, and Close it.
type Server struct {
	opts   Options
	clock  Clock
	log    *slog.Logger
	st     *store
	auth   *hawk.Authenticator
	issuer Credentials
	secret []byte
	static map[string]Client
	wm     wmState   // the embedded worker-manager (workermanager.go)
	roles  roleState // the Auth service's roles (roles.go)

	mu        sync.Mutex
	tasks     map[string]*taskRecord
	artifacts map[string]*artifactRecord
	objects   map[string]*objectRecord
	blobs     map[string]*blobRecord
	pending   map[string][]pendingRef // taskQueueId -> pending runs
	waiters   map[string]chan struct{}
	// changed, when not nil, is closed (and reset) by the next resolution
	// of any task: WaitResolved waits on it instead of polling.
	changed    chan struct{}
	dependents map[string][]string // taskId -> unscheduled tasks depending on it
	open       map[string]bool     // taskIds not resolved yet
	queued     map[string]bool     // pendingRef keys in pending
	// nextDue is no later than the earliest deadline or takenUntil among
	// open tasks; sweeps before it have nothing to do.
	nextDue time.Time
	// nextGC is when PurgeExpired runs next (clock time).
	nextGC time.Time
	closed bool

	done    chan struct{}
	wg      sync.WaitGroup
	handler http.Handler
}

// pendingRef is a pending run waiting in a task queue.
type pendingRef struct {
	taskID    string
	runID     int
	priority  int
	scheduled time.Time
}

func (p pendingRef) key() string { return p.taskID + "/" + itoa(p.runID) }

// before orders a queue: higher priority first, then earlier scheduled.
func (p pendingRef) before(o pendingRef) bool {
	if p.priority != o.priority {
		return p.priority > o.priority
	}
	return p.scheduled.Before(o.scheduled)
}

// New opens (or creates) the server state in opts.Dir and starts the
// background expirer. Close releases both.
func New(opts Options) (*Server, error) {
	o := opts.withDefaults()
	st, ls, err := openStore(o.Dir, o.NoSync)
	if err != nil {
		return nil, err
	}
	s := &Server{
		opts:       o,
		clock:      o.Clock,
		log:        o.Logger.With("component", "localqueue"),
		st:         st,
		secret:     ls.secret,
		issuer:     Credentials{ClientID: IssuerClientID, AccessToken: ls.issuerKey},
		static:     map[string]Client{},
		tasks:      ls.tasks,
		artifacts:  ls.artifacts,
		objects:    ls.objects,
		blobs:      ls.blobs,
		pending:    map[string][]pendingRef{},
		waiters:    map[string]chan struct{}{},
		dependents: map[string][]string{},
		open:       map[string]bool{},
		queued:     map[string]bool{},
		done:       make(chan struct{}),
	}
	for _, c := range o.Clients {
		if c.ClientID == "" || c.AccessToken == "" {
			_ = st.close()
			return nil, fmt.Errorf("localqueue client %q: %w: clientId and accessToken are required", c.ClientID, ErrInput)
		}
		if c.ClientID == IssuerClientID {
			_ = st.close()
			return nil, fmt.Errorf("localqueue client %q: %w: clientId is reserved", c.ClientID, ErrInput)
		}
		s.static[c.ClientID] = c
	}
	s.auth = &hawk.Authenticator{Lookup: s.lookupClient, Now: s.clock.Now}
	for _, t := range s.tasks {
		s.index(t)
	}
	routes := s.routes()
	s.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		routes.ServeHTTP(&datedWriter{ResponseWriter: w, clock: s.clock}, r)
	})
	if o.ExpireInterval > 0 {
		s.wg.Add(1)
		go s.expirer(o.ExpireInterval)
	}
	return s, nil
}

// Close stops the expirer, wakes long polls and closes the database. It is
// safe to call more than once.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.done)
	for q, ch := range s.waiters {
		close(ch)
		delete(s.waiters, q)
	}
	s.mu.Unlock()
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.close()
}

// Handler returns the HTTP handler serving the Queue at /api/queue/v1/, the
// object service at /api/object/v1/ and the upload/download URLs the
// server hands out at /_localqueue/.
func (s *Server) Handler() http.Handler { return s.handler }

// IssuerCredentials returns the server's own permanent credentials (scope
// `*`). Tests may use them as an all-powerful client.
func (s *Server) IssuerCredentials() Credentials {
	return Credentials{ClientID: s.issuer.ClientID, AccessToken: s.issuer.AccessToken}
}

func (s *Server) lookupClient(_ context.Context, clientID string) (hawk.Client, error) {
	if clientID == IssuerClientID {
		return hawk.Client{AccessToken: s.issuer.AccessToken, Scopes: []string{"*"}}, nil
	}
	if c, ok := s.lookupIssuer(clientID); ok {
		return c, nil
	}
	c, ok := s.static[clientID]
	if !ok {
		return hawk.Client{}, hawk.ErrUnknownClient
	}
	return hawk.Client{AccessToken: c.AccessToken, Scopes: c.Scopes}, nil
}

func (s *Server) expirer(every time.Duration) {
	defer s.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
			if err := s.CheckExpiry(); err != nil && !errors.Is(err, ErrClosed) {
				s.log.Error("resolving expired claims and deadlines", "err", err)
			}
		}
	}
}

// now is the clock's time, UTC, in whole milliseconds (the precision of
// Taskcluster's timestamps).
func (s *Server) now() time.Time { return s.clock.Now().UTC().Truncate(time.Millisecond) }

// CheckExpiry resolves, at the clock's current time, every run whose claim
// expired (exception/claim-expired, with a retry run while retries remain
// and the deadline is ahead) and every task whose deadline passed
// (exception/deadline-exceeded), and every 10 minutes of clock time purges
// expired tasks and artifacts (PurgeExpired). The background expirer calls
// it periodically; every API request applies the claim and deadline part;
// tests with a FakeClock call it after advancing time.
func (s *Server) CheckExpiry() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.sweepLocked()
	if err == nil && !s.now().Before(s.nextGC) {
		_, _, err = s.purgeLocked()
	}
	return err
}

func (s *Server) sweepLocked() error {
	if s.closed {
		return ErrClosed
	}
	now := s.now()
	if now.Before(s.nextDue) {
		return nil
	}
	// Scan, and compute the next due time from what stays open.
	s.nextDue = now.Add(24 * time.Hour)
	var errs []error
	defer func() {
		for id := range s.open {
			s.noteDue(s.tasks[id])
		}
	}()
	for id := range s.open {
		t := s.tasks[id]
		if t.resolved() {
			continue
		}
		var expired bool
		if r := t.latest(); r != nil && r.State == tcwire.StateRunning && !r.TakenUntil.After(now) && r.TakenUntil.Before(t.Definition.Deadline) {
			expired = true
		}
		deadline := !t.Definition.Deadline.After(now)
		if !expired && !deadline {
			continue
		}
		n := t.clone()
		if expired {
			r := n.latest()
			r.State, r.ReasonResolved, r.Resolved = tcwire.StateException, tcwire.ReasonClaimExpired, now
			if n.RetriesLeft > 0 && !deadline {
				n.RetriesLeft--
				n.Runs = append(n.Runs, Run{RunID: len(n.Runs), State: tcwire.StatePending, ReasonCreated: tcwire.ReasonRetry, Scheduled: now})
			}
			s.log.Info("claim expired", "taskId", id, "runId", r.RunID)
		}
		if deadline && !n.resolved() {
			if r := n.latest(); r == nil {
				n.Runs = append(n.Runs, Run{RunID: 0, State: tcwire.StateException, ReasonCreated: tcwire.ReasonException,
					ReasonResolved: tcwire.ReasonDeadlineExceeded, Scheduled: now, Resolved: now})
			} else {
				r.State, r.ReasonResolved, r.Resolved = tcwire.StateException, tcwire.ReasonDeadlineExceeded, now
			}
			s.log.Info("deadline exceeded", "taskId", id)
		}
		if err := s.saveLocked(n); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// saveLocked persists t, makes it current, updates the indexes and
// schedules dependents of a task that just got its final resolution.
func (s *Server) saveLocked(t *taskRecord) error {
	if err := s.st.commit(write{tasks: []*taskRecord{t}}); err != nil {
		return err
	}
	old := s.tasks[t.TaskID]
	s.tasks[t.TaskID] = t
	s.index(t)
	if s.changed != nil && t.resolved() && (old == nil || !old.resolved()) {
		close(s.changed)
		s.changed = nil
	}
	if t.resolved() && (old == nil || !old.resolved()) {
		return s.scheduleDependentsLocked(t.TaskID)
	}
	return nil
}

// index records a task's pending run in its queue and, while unscheduled,
// its dependencies; it wakes claimWork long polls on that queue.
func (s *Server) index(t *taskRecord) {
	if t.resolved() {
		delete(s.open, t.TaskID)
	} else {
		s.open[t.TaskID] = true
		s.noteDue(t)
	}
	r := t.latest()
	switch {
	case r == nil:
		for _, dep := range t.Definition.Dependencies {
			if !containsString(s.dependents[dep], t.TaskID) {
				s.dependents[dep] = append(s.dependents[dep], t.TaskID)
			}
		}
	case r.State == tcwire.StatePending:
		q := t.Definition.TaskQueueID
		ref := pendingRef{taskID: t.TaskID, runID: r.RunID, priority: priorities[t.Definition.Priority], scheduled: r.Scheduled}
		if s.queued[ref.key()] {
			return
		}
		s.queued[ref.key()] = true
		// Keep the queue ordered: highest priority first, then oldest.
		refs := s.pending[q]
		i := sort.Search(len(refs), func(i int) bool { return ref.before(refs[i]) })
		refs = append(refs, pendingRef{})
		copy(refs[i+1:], refs[i:])
		refs[i] = ref
		s.pending[q] = refs
		if ch, ok := s.waiters[q]; ok {
			close(ch)
			delete(s.waiters, q)
		}
	}
}

// noteDue lowers nextDue to an open task's deadline or claim expiry.
func (s *Server) noteDue(t *taskRecord) {
	if t == nil || t.resolved() {
		return
	}
	due := t.Definition.Deadline
	if r := t.latest(); r != nil && r.State == tcwire.StateRunning && r.TakenUntil.Before(due) {
		due = r.TakenUntil
	}
	if s.nextDue.IsZero() || due.Before(s.nextDue) {
		s.nextDue = due
	}
}

// scheduleDependentsLocked gives run 0 to unscheduled tasks whose
// dependencies are now satisfied.
func (s *Server) scheduleDependentsLocked(taskID string) error {
	deps := s.dependents[taskID]
	delete(s.dependents, taskID)
	var errs []error
	for _, id := range deps {
		t := s.tasks[id]
		if t == nil || len(t.Runs) > 0 || !s.dependenciesSatisfiedLocked(t) {
			continue
		}
		n := t.clone()
		n.Runs = append(n.Runs, Run{RunID: 0, State: tcwire.StatePending, ReasonCreated: tcwire.ReasonScheduled, Scheduled: s.now()})
		if err := s.saveLocked(n); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// dependenciesSatisfiedLocked applies task.requires: all-completed needs
// every dependency resolved completed, all-resolved just resolved. A task
// listing itself ignores that entry.
func (s *Server) dependenciesSatisfiedLocked(t *taskRecord) bool {
	for _, dep := range t.Definition.Dependencies {
		if dep == t.TaskID {
			continue
		}
		d := s.tasks[dep]
		if d == nil || !d.resolved() {
			return false
		}
		if t.Definition.Requires == "all-completed" && d.state() != tcwire.StateCompleted {
			return false
		}
	}
	return true
}

// taskLocked returns a task after applying expiry, or a not-found error.
func (s *Server) taskLocked(taskID string) (*taskRecord, error) {
	if err := s.sweepLocked(); err != nil {
		return nil, err
	}
	t := s.tasks[taskID]
	if t == nil {
		return nil, errNotFound("task `%s` not found", taskID)
	}
	return t, nil
}

// runLocked returns a task and one of its runs.
func (s *Server) runLocked(taskID string, runID int) (*taskRecord, *Run, error) {
	t, err := s.taskLocked(taskID)
	if err != nil {
		return nil, nil, err
	}
	if runID < 0 || runID >= len(t.Runs) {
		return nil, nil, errNotFound("run %d not found on task `%s`", runID, taskID)
	}
	return t, &t.Runs[runID], nil
}

// ClaimedTask is one claim of claimWork (claim-work-response.json
// `tasks[]`), the client's type.
type ClaimedTask = taskcluster.TaskClaim

// ReclaimResult is task-reclaim-response.json, the client's type.
type ReclaimResult = taskcluster.TaskReclaimResponse

// ClaimWork claims up to n pending tasks of taskQueueId for the worker,
// waiting up to the long-poll time (or until ctx ends) for one to be
// pending. It answers as soon as at least one task was claimed; an empty
// result means nothing was pending.
func (s *Server) ClaimWork(ctx context.Context, taskQueueID, workerGroup, workerID string, n int) ([]ClaimedTask, error) {
	timer := time.NewTimer(s.opts.LongPoll)
	defer timer.Stop()
	for {
		s.mu.Lock()
		if err := s.sweepLocked(); err != nil {
			s.mu.Unlock()
			return nil, err
		}
		claims, err := s.claimLocked(taskQueueID, workerGroup, workerID, n)
		if err != nil || len(claims) > 0 {
			s.mu.Unlock()
			return claims, err
		}
		ch, ok := s.waiters[taskQueueID]
		if !ok {
			ch = make(chan struct{})
			s.waiters[taskQueueID] = ch
		}
		s.mu.Unlock()
		select {
		case <-ch:
		case <-timer.C:
			return []ClaimedTask{}, nil
		case <-ctx.Done():
			return []ClaimedTask{}, nil
		case <-s.done:
			return []ClaimedTask{}, nil
		}
	}
}

func (s *Server) claimLocked(queue, workerGroup, workerID string, n int) ([]ClaimedTask, error) {
	refs := s.pending[queue] // ordered by index
	var (
		claims  = []ClaimedTask{}
		records []*taskRecord
		taken   []pendingRef
		keep    = refs[:0]
		errs    []error
	)
	for i, ref := range refs {
		if len(claims) >= n {
			keep = append(keep, refs[i:]...)
			break
		}
		t := s.tasks[ref.taskID]
		r := (*Run)(nil)
		if t != nil {
			r = t.latest()
		}
		if r == nil || r.RunID != ref.runID || r.State != tcwire.StatePending {
			delete(s.queued, ref.key())
			continue // stale entry
		}
		c, rec, err := s.claimRun(t, workerGroup, workerID)
		if err != nil {
			errs = append(errs, err)
			keep = append(keep, ref)
			continue
		}
		claims, records, taken = append(claims, c), append(records, rec), append(taken, ref)
	}
	// One commit for every run claimed.
	if len(records) > 0 {
		if err := s.st.commit(write{tasks: records}); err != nil {
			// Nothing was claimed: the runs stay pending, in order.
			keep = append(keep, taken...)
			sort.SliceStable(keep, func(i, j int) bool { return keep[i].before(keep[j]) })
			s.pending[queue] = keep
			return []ClaimedTask{}, errors.Join(append(errs, err)...)
		}
	}
	for i, rec := range records {
		delete(s.queued, taken[i].key())
		s.tasks[rec.TaskID] = rec
		s.index(rec)
		s.log.Info("task claimed", "taskId", rec.TaskID, "runId", claims[i].RunID, "workerGroup", workerGroup, "workerId", workerID)
	}
	s.pending[queue] = keep
	return claims, errors.Join(errs...)
}

// claimRun makes the claim of t's pending run (not yet saved).
func (s *Server) claimRun(t *taskRecord, workerGroup, workerID string) (ClaimedTask, *taskRecord, error) {
	now := s.now()
	n := t.clone()
	r := n.latest()
	r.State, r.WorkerGroup, r.WorkerID = tcwire.StateRunning, workerGroup, workerID
	r.Started = now
	r.TakenUntil = now.Add(s.opts.ClaimTimeout)
	creds, err := s.taskCredentials(n, r)
	if err != nil {
		return ClaimedTask{}, nil, err
	}
	return ClaimedTask{
		Status: n.status(), RunID: r.RunID, WorkerGroup: workerGroup, WorkerID: workerID,
		TakenUntil: r.TakenUntil, Task: n.Definition, Credentials: creds,
	}, n, nil
}

// taskCredentials issues the run's temporary credentials as the Queue
// does: named `task-client/<taskId>/<runId>/on/<workerGroup>/<workerId>/until/<takenUntil seconds>`,
// valid until takenUntil, with the reclaim/resolve/create-artifact scopes
// of the run plus task.scopes.
func (s *Server) taskCredentials(t *taskRecord, r *Run) (Credentials, error) {
	until := strconv.FormatFloat(float64(r.TakenUntil.UnixMilli())/1000, 'f', -1, 64)
	name := "task-client/" + t.TaskID + "/" + itoa(r.RunID) + "/on/" + r.WorkerGroup + "/" + r.WorkerID + "/until/" + until
	run := t.TaskID + "/" + itoa(r.RunID)
	scopes := append([]string{
		"queue:reclaim-task:" + run,
		"queue:resolve-task:" + run,
		"queue:create-artifact:" + run,
	}, t.Definition.Scopes...)
	c, err := hawk.CreateTemporaryCredentials(s.issuer, name, scopes, s.now(), r.TakenUntil)
	if err != nil {
		return Credentials{}, fmt.Errorf("issuing task credentials: %w", err)
	}
	return c, nil
}

// ReclaimTask extends the claim of a running run by the claim timeout and
// issues fresh credentials. It fails with ErrConflict when the deadline
// passed, or the run is not the latest or not running (cancelled,
// resolved, claim expired).
func (s *Server) ReclaimTask(taskID string, runID int) (ReclaimResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, r, err := s.runLocked(taskID, runID)
	if err != nil {
		return ReclaimResult{}, err
	}
	now := s.now()
	if !t.Definition.Deadline.After(now) {
		return ReclaimResult{}, errConflict("task `%s` can't be reclaimed past its deadline of %s", taskID, fmtTime(t.Definition.Deadline))
	}
	if runID != len(t.Runs)-1 || r.State != tcwire.StateRunning {
		return ReclaimResult{}, errConflict("run %d on task `%s` is resolved or not running", runID, taskID)
	}
	n := t.clone()
	nr := &n.Runs[runID]
	if until := now.Add(s.opts.ClaimTimeout); until.After(nr.TakenUntil) {
		nr.TakenUntil = until
	}
	creds, err := s.taskCredentials(n, nr)
	if err != nil {
		return ReclaimResult{}, err
	}
	if err := s.saveLocked(n); err != nil {
		return ReclaimResult{}, err
	}
	return ReclaimResult{
		Status: n.status(), RunID: runID, WorkerGroup: nr.WorkerGroup, WorkerID: nr.WorkerID,
		TakenUntil: nr.TakenUntil, Credentials: creds,
	}, nil
}

// Resolve resolves a running run: state "completed" or "failed" (reason
// equal to the state), or "exception" with one of reportException's
// reasons; worker-shutdown and intermittent-task add a new pending run
// (reasonCreated retry / task-retry) while retries remain. Repeating a
// resolution that already happened returns the status; any other
// resolution of a run that is not running fails with ErrConflict.
func (s *Server) Resolve(taskID string, runID int, state, reason string) (TaskStatus, error) {
	switch state {
	case tcwire.StateCompleted, tcwire.StateFailed:
		reason = state
	case tcwire.StateException:
		if !exceptionReasons[reason] {
			return TaskStatus{}, errInput("reason %q is not one of worker-shutdown, malformed-payload, resource-unavailable, internal-error, intermittent-task", reason)
		}
	default:
		return TaskStatus{}, errInput("cannot resolve a run as %q", state)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t, r, err := s.runLocked(taskID, runID)
	if err != nil {
		return TaskStatus{}, err
	}
	last := len(t.Runs) - 1
	if runID != last || r.State != tcwire.StateRunning {
		// Idempotence: the same resolution again is fine.
		retried := state == tcwire.StateException && runID == last-1 &&
			(t.Runs[last].ReasonCreated == tcwire.ReasonRetry || t.Runs[last].ReasonCreated == tcwire.ReasonTaskRetry)
		if (runID == last || retried) && r.State == state && r.ReasonResolved == reason {
			return t.status(), nil
		}
		return TaskStatus{}, errConflict("run %d on task `%s` is resolved or not running", runID, taskID)
	}
	if state == tcwire.StateCompleted {
		for _, a := range s.runArtifactsLocked(taskID, runID) {
			if a.StorageType == "object" && !a.Present {
				return TaskStatus{}, errConflict("all object artifacts must be finished (finishArtifact) to resolve task as completed; %q is not", a.Name)
			}
		}
	}
	now := s.now()
	n := t.clone()
	nr := &n.Runs[runID]
	nr.State, nr.ReasonResolved, nr.Resolved = state, reason, now
	if n.RetriesLeft > 0 && (reason == tcwire.ReasonWorkerShutdown || reason == tcwire.ReasonIntermittentTask) {
		n.RetriesLeft--
		created := tcwire.ReasonRetry
		if reason == tcwire.ReasonIntermittentTask {
			created = tcwire.ReasonTaskRetry
		}
		n.Runs = append(n.Runs, Run{RunID: len(n.Runs), State: tcwire.StatePending, ReasonCreated: created, Scheduled: now})
	}
	if err := s.saveLocked(n); err != nil {
		return TaskStatus{}, err
	}
	s.log.Info("run resolved", "taskId", taskID, "runId", runID, "state", state, "reason", reason)
	return n.status(), nil
}

// Cancel resolves the task's pending or running run (or, for an
// unscheduled task, a new run) as exception/canceled. A resolved task is
// left as it is; past the deadline it fails with ErrConflict.
func (s *Server) Cancel(taskID string) (TaskStatus, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.taskLocked(taskID)
	if err != nil {
		return TaskStatus{}, err
	}
	now := s.now()
	if !t.Definition.Deadline.After(now) {
		return TaskStatus{}, errConflict("task `%s` can't be canceled past its deadline of %s", taskID, fmtTime(t.Definition.Deadline))
	}
	if t.resolved() {
		return t.status(), nil
	}
	n := t.clone()
	if r := n.latest(); r == nil {
		n.Runs = append(n.Runs, Run{RunID: 0, State: tcwire.StateException, ReasonCreated: tcwire.ReasonException,
			ReasonResolved: tcwire.ReasonCanceled, Scheduled: now, Resolved: now})
	} else {
		r.State, r.ReasonResolved, r.Resolved = tcwire.StateException, tcwire.ReasonCanceled, now
	}
	if err := s.saveLocked(n); err != nil {
		return TaskStatus{}, err
	}
	s.log.Info("task canceled", "taskId", taskID)
	return n.status(), nil
}

// Status returns a task's status (after applying expiry).
func (s *Server) Status(taskID string) (TaskStatus, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.taskLocked(taskID)
	if err != nil {
		return TaskStatus{}, err
	}
	return t.status(), nil
}

// Task returns a task's definition.
func (s *Server) Task(taskID string) (TaskDefinition, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.taskLocked(taskID)
	if err != nil {
		return TaskDefinition{}, err
	}
	return t.Definition, nil
}

// TaskAndStatus is one entry of listDependentTasks
// (task-definition-and-status.json).
type TaskAndStatus struct {
	Status TaskStatus     `json:"status"`
	Task   TaskDefinition `json:"task"`
}

// Dependents returns the tasks that list taskID in their dependencies,
// sorted by taskId.
func (s *Server) Dependents(taskID string) ([]TaskAndStatus, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.taskLocked(taskID); err != nil {
		return nil, err
	}
	out := []TaskAndStatus{}
	for _, t := range s.tasks {
		if t.TaskID != taskID && containsString(t.Definition.Dependencies, taskID) {
			out = append(out, TaskAndStatus{Status: t.status(), Task: t.Definition})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Status.TaskID < out[j].Status.TaskID })
	return out, nil
}

// TaskIDs returns the ids of all tasks, sorted.
func (s *Server) TaskIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, 0, len(s.tasks))
	for id := range s.tasks {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

func fmtTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// datedWriter sets the Date header from the server's clock when the answer
// starts (after a long poll, not before), as a real deployment's is: workers
// use it to correct takenUntil for their own clock's offset.
type datedWriter struct {
	http.ResponseWriter
	clock Clock
	done  bool
}

func (d *datedWriter) WriteHeader(code int) {
	if !d.done {
		d.done = true
		d.Header().Set("Date", d.clock.Now().UTC().Format(http.TimeFormat))
	}
	d.ResponseWriter.WriteHeader(code)
}

func (d *datedWriter) Write(b []byte) (int, error) {
	if !d.done {
		d.WriteHeader(http.StatusOK)
	}
	return d.ResponseWriter.Write(b)
}

// ReadFrom keeps the underlying writer's sendfile path for blob downloads.
func (d *datedWriter) ReadFrom(r io.Reader) (int64, error) {
	if !d.done {
		d.WriteHeader(http.StatusOK)
	}
	return io.Copy(d.ResponseWriter, r)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (d *datedWriter) Unwrap() http.ResponseWriter { return d.ResponseWriter }
