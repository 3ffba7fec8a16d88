package localqueue

import (
	"log/slog"
	"sync"
	"time"
)

// Defaults for Options fields left zero.
const (
	// DefaultClaimTimeout is how long a claim (claimWork, reclaimTask) lasts
	// before the run is resolved exception/claim-expired: upstream's
	// queue.task_claim_timeout default of 1200 s.
	DefaultClaimTimeout = 20 * time.Minute
	// DefaultLongPoll is how long claimWork waits for a pending task before
	// answering with an empty list, as upstream does (20 s).
	DefaultLongPoll = 20 * time.Second
	// DefaultExpireInterval is how often the background expirer resolves
	// expired claims and exceeded deadlines.
	DefaultExpireInterval = time.Second
	// ArtifactExceptionGrace is how long after a run was resolved exception
	// createArtifact is still allowed for it (upstream: 25 minutes).
	ArtifactExceptionGrace = 25 * time.Minute
)

// Client is a static (permanent) Taskcluster client the server accepts:
// requests Hawk-signed with AccessToken as ClientID get Scopes. Scopes use
// Taskcluster's scope syntax: a trailing `*` matches any suffix; `assume:`
// scopes are expanded with the server's roles (roles.go).
type Client struct {
	ClientID    string   `json:"clientId"`
	AccessToken string   `json:"accessToken"`
	Scopes      []string `json:"scopes"`
}

// Clock tells the server the time. Tests inject a *FakeClock so that claim
// expiry and deadlines happen when the test advances time, never by sleeping.
type Clock interface {
	Now() time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// FakeClock is a Clock that only moves when told to. It is safe for
// concurrent use.
type FakeClock struct {
	mu  sync.Mutex
	now time.Time
}

// NewFakeClock returns a FakeClock reading t.
func NewFakeClock(t time.Time) *FakeClock { return &FakeClock{now: t} }

// Now returns the clock's current time.
func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *FakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Set moves the clock to t.
func (c *FakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// Options configure a Server. Only Dir is required.
type Options struct {
	// Dir holds the state database (queue.db, with uploads of up to 64
	// KiB) and larger artifact bytes (blobs/). It is created if missing;
	// a server started again on the
	// same Dir finds every task, run and artifact it had.
	Dir string

	// Clients are the static clients whose Hawk signatures are accepted.
	Clients []Client

	// AnonymousScopes are granted to requests without an Authorization
	// header (nor bewit). Nil means DefaultAnonymousScopes; an empty,
	// non-nil slice grants nothing.
	AnonymousScopes []string

	// Clock defaults to the system clock.
	Clock Clock

	// ClaimTimeout is how long a claim lasts (takenUntil = now +
	// ClaimTimeout); default DefaultClaimTimeout.
	ClaimTimeout time.Duration

	// LongPoll is the longest claimWork waits for work; default
	// DefaultLongPoll. Tests set it short.
	LongPoll time.Duration

	// ExpireInterval is the period of the background expirer (claim
	// expiry, deadlines) on the real clock; default DefaultExpireInterval.
	// A negative value disables the goroutine: expiry then happens on every
	// request and on CheckExpiry.
	ExpireInterval time.Duration

	// BaseURL is the externally visible URL of the server (e.g.
	// "http://127.0.0.1:8080"), used in upload and download URLs it hands
	// out. Empty means "derive from each request's Host".
	BaseURL string

	// MaxConnections bounds the connections Start's HTTP server holds open
	// at once; further clients wait in the listen backlog until one
	// closes. Default: DefaultMaxConnections, lowered to leave room below
	// the process's open-file limit (RLIMIT_NOFILE).
	MaxConnections int
	// BodyReadTimeout is how long Start's HTTP server waits for each
	// MinBodyProgress bytes of a request body (and for a shorter body as a
	// whole) before it closes the connection; default
	// DefaultBodyReadTimeout. With MaxConnections it keeps slow clients
	// from holding every connection (slowloris).
	BodyReadTimeout time.Duration

	// NoSync skips fsync on every database commit (bbolt NoSync): much
	// faster, and a crash of this process still loses nothing, but an
	// operating-system crash may.
	NoSync bool

	// Logger receives the server's structured log; default slog.Default().
	Logger *slog.Logger
}

// DefaultAnonymousScopes are the read-only scopes unauthenticated requests
// get unless Options.AnonymousScopes says otherwise, like a deployment's
// `anonymous` role: public artifacts, task definitions and statuses.
var DefaultAnonymousScopes = []string{
	"queue:get-artifact:public/*",
	"queue:get-task:*",
	"queue:status:*",
	"queue:list-artifacts:*",
	"queue:list-dependent-tasks:*",
	"queue:list-task-group:*",
}

func (o *Options) withDefaults() Options {
	out := *o
	if out.Clock == nil {
		out.Clock = systemClock{}
	}
	if out.ClaimTimeout <= 0 {
		out.ClaimTimeout = DefaultClaimTimeout
	}
	if out.LongPoll <= 0 {
		out.LongPoll = DefaultLongPoll
	}
	if out.ExpireInterval == 0 {
		out.ExpireInterval = DefaultExpireInterval
	}
	if out.AnonymousScopes == nil {
		out.AnonymousScopes = DefaultAnonymousScopes
	}
	if out.Logger == nil {
		out.Logger = slog.Default()
	}
	return out
}
