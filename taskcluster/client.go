// Package taskcluster is the subset of the Taskcluster API a worker needs:
// the Queue (claim, reclaim, resolve, artifacts, tasks), the Object service
// (uploads and downloads), the Worker-manager (registration, termination,
// error reports) and the Index's findTask, typed after the upstream JSON
// Schemas (../shared/taskcluster/schemas/{queue,object,worker-manager}/v1)
// and signed with Hawk (package hawk). The types every layer shares (task
// definition, credentials, states, API errors) are package tcwire's.
//
// RunQueue is what a task run's components get as task.Context.Queue: a
// Client the worker signs with the run's task credentials.
//
// A Client holds the deployment's rootUrl and a credentials source read on
// every attempt, so credentials can be swapped at any time (a reclaim hands
// out fresh task credentials while uploads are running). Every call takes a
// context. Network errors and 5xx answers are retried with exponential
// backoff and jitter, re-signing each attempt; 4xx answers are returned at
// once as *APIError.
package taskcluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/workergen/workergen/taskcluster/hawk"
	"github.com/workergen/workergen/taskcluster/tcwire"
)

// Credentials are Taskcluster credentials (see tcwire.Credentials).
type Credentials = tcwire.Credentials

// Retry defaults.
const (
	// DefaultMaxElapsedTime bounds the retries of one call when
	// Client.MaxElapsedTime is zero.
	DefaultMaxElapsedTime = 2 * time.Minute
	// DefaultInitialInterval is the first backoff delay.
	DefaultInitialInterval = 250 * time.Millisecond
	// DefaultMaxInterval caps one backoff delay.
	DefaultMaxInterval = 30 * time.Second
	// DefaultAttemptTimeout bounds one attempt of an API call (not of an
	// upload) when Client.AttemptTimeout is zero; claimWork long-polls for
	// about 20 seconds.
	DefaultAttemptTimeout = 2 * time.Minute
	// maxErrorBody bounds how much of an error answer is read.
	maxErrorBody = 64 << 10
)

// Header names Taskcluster services use for request tracing: the client
// sends a trace id (one per call, the same for all its attempts); services
// answer with their request id and the trace id.
const (
	HeaderTraceID         = "x-taskcluster-trace-id"
	HeaderResponseRequest = "x-for-request-id"
	HeaderResponseTrace   = "x-for-trace-id"
)

// Client calls Taskcluster services of one deployment. The zero value is not
// usable: set RootURL. A Client is safe for concurrent use once configured;
// copy the struct to vary a field (it holds no per-call state).
type Client struct {
	// RootURL is the deployment, e.g. "https://tc.example.com"; service
	// URLs are <RootURL>/api/<service>/v1/<path>.
	RootURL string
	// Credentials returns the credentials to sign one attempt with; it is
	// called once per attempt. nil (or a nil result) sends unauthenticated
	// requests. See StaticCredentials and CredentialsHolder.
	Credentials func() *Credentials
	// AuthorizedScopes, when non-nil, restricts every request to these
	// scopes (overriding the credentials' own AuthorizedScopes).
	AuthorizedScopes []string
	// HTTPClient sends requests; nil means a shared client without an
	// overall timeout (contexts bound calls; claimWork long-polls).
	HTTPClient *http.Client
	// MaxElapsedTime bounds the retries of one call: zero means
	// DefaultMaxElapsedTime, negative means only the context bounds them.
	MaxElapsedTime time.Duration
	// AttemptTimeout bounds each attempt of an API call, so a stalled
	// connection is retried rather than waited on until the context ends:
	// zero means DefaultAttemptTimeout, negative means no bound. Uploads
	// (Put) and artifact content downloads are not bounded by it.
	AttemptTimeout time.Duration
	// InitialInterval and MaxInterval shape the exponential backoff; zero
	// means DefaultInitialInterval / DefaultMaxInterval.
	InitialInterval, MaxInterval time.Duration
	// Logger receives a debug record per retried attempt; nil means
	// slog.Default().
	Logger *slog.Logger
	// UserAgent is sent as User-Agent when non-empty.
	UserAgent string
	// Now is the clock used for Hawk timestamps; nil means time.Now.
	Now func() time.Time
	// Skew, when non-nil, is updated from the Date header of every API
	// answer (errors included), and Hawk timestamps are moved onto the
	// services' clock with it, so a machine whose clock is off still
	// authenticates. Share one between the copies of a Client.
	Skew *ClockSkew
}

// StaticCredentials returns a credentials source that always yields c.
func StaticCredentials(c Credentials) func() *Credentials {
	return func() *Credentials { return &c }
}

// CredentialsHolder holds credentials that can be replaced at any time,
// e.g. task credentials refreshed by each reclaim. Use its Get method as
// Client.Credentials.
type CredentialsHolder struct{ p atomic.Pointer[Credentials] }

// NewCredentialsHolder returns a holder initialised with c.
func NewCredentialsHolder(c Credentials) *CredentialsHolder {
	h := &CredentialsHolder{}
	h.Set(c)
	return h
}

// Set replaces the credentials; attempts started afterwards use them.
func (h *CredentialsHolder) Set(c Credentials) { h.p.Store(&c) }

// Get returns the current credentials (nil before the first Set).
func (h *CredentialsHolder) Get() *Credentials { return h.p.Load() }

// defaultHTTPClient has its own transport, so CloseIdleConnections does not
// touch other users of http.DefaultTransport. It keeps up to
// maxIdleConnsPerHost idle connections per host, not net/http's 2: worker
// binaries speak HTTP/1.1 only (built without HTTP/2, see gen/build.Tags),
// one request per connection at a time, so concurrent uploads (capacity ×
// uploadConcurrency) and Queue calls reuse their connections instead of
// opening, and for https handshaking, new ones.
var defaultHTTPClient = newHTTPClient()

// maxIdleConnsPerHost is how many idle keep-alive connections the default
// HTTP client keeps per host (net/http's DefaultMaxIdleConnsPerHost is 2).
const maxIdleConnsPerHost = 64

func newHTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = maxIdleConnsPerHost
	return &http.Client{Transport: t}
}

// ErrNoRootURL means Client.RootURL is empty.
var ErrNoRootURL = errors.New("taskcluster client has no rootUrl")

// ServiceURL returns <RootURL>/api/<service>/v1<path>, where path is
// already escaped (see Route).
func (c *Client) ServiceURL(service, path string) (*url.URL, error) {
	if c.RootURL == "" {
		return nil, ErrNoRootURL
	}
	raw := strings.TrimRight(c.RootURL, "/") + "/api/" + service + "/v1" + path
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("building url for %s%s: %w", service, path, err)
	}
	return u, nil
}

// Route fills an API route template's "<param>" placeholders from args in
// order, escaping each value as one path segment the way Taskcluster clients
// do (encodeURIComponent): "/" becomes %2F and a space %20, while "+" and
// other sub-delimiters stay as they are. Route panics if the template's
// placeholder count differs from len(args), which is a programming error.
func Route(template string, args ...string) string {
	var b strings.Builder
	rest := template
	for _, a := range args {
		i := strings.IndexByte(rest, '<')
		j := strings.IndexByte(rest, '>')
		if i < 0 || j < i {
			panic("taskcluster.Route: more args than placeholders in " + template)
		}
		b.WriteString(rest[:i])
		b.WriteString(url.PathEscape(a))
		rest = rest[j+1:]
	}
	if strings.IndexByte(rest, '<') >= 0 {
		panic("taskcluster.Route: fewer args than placeholders in " + template)
	}
	b.WriteString(rest)
	return b.String()
}

// call describes one API call.
type call struct {
	service, name, method, path string
	query                       url.Values
	in, out                     any
	// noRedirect returns 3xx answers to the caller (getArtifact).
	noRedirect bool
	// lenient ignores an answer body that does not decode into out.
	lenient bool
}

// Call performs one API call: method on <RootURL>/api/<service>/v1<path>
// (path escaped, see Route) with query, the JSON body in (nil for none),
// decoding a JSON answer into out (nil to discard). name labels errors and
// logs, e.g. "queue.claimWork". It retries as described on Client.
func (c *Client) Call(ctx context.Context, service, name, method, path string, query url.Values, in, out any) error {
	_, err := c.do(ctx, call{service: service, name: name, method: method, path: path, query: query, in: in, out: out})
	return err
}

func (c *Client) do(ctx context.Context, k call) (*http.Response, error) {
	u, err := c.ServiceURL(k.service, k.path)
	if err != nil {
		return nil, err
	}
	if len(k.query) > 0 {
		u.RawQuery = k.query.Encode()
	}
	var body []byte
	if k.in != nil {
		if body, err = json.Marshal(k.in); err != nil {
			return nil, fmt.Errorf("%s: encoding request: %w", k.name, err)
		}
	}
	traceID := newTraceID()
	hc := c.httpClient()
	if k.noRedirect {
		nc := *hc
		nc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		hc = &nc
	}
	attemptTimeout := durationOr(c.AttemptTimeout, DefaultAttemptTimeout)
	attempt := func() (*http.Response, error) {
		actx := ctx
		if c.AttemptTimeout >= 0 {
			var cancel context.CancelFunc
			actx, cancel = context.WithTimeout(ctx, attemptTimeout)
			defer cancel()
		}
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		req, err := http.NewRequestWithContext(actx, k.method, u.String(), rd)
		if err != nil {
			return nil, backoff.Permanent(fmt.Errorf("%s: %w", k.name, err))
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		req.Header.Set("Accept", "application/json")
		req.Header.Set(HeaderTraceID, traceID)
		signedWith := c.Skew.Offset()
		if err := c.Sign(req); err != nil {
			return nil, backoff.Permanent(fmt.Errorf("%s: signing request: %w", k.name, err))
		}
		resp, err := hc.Do(req)
		if err != nil {
			return nil, fmt.Errorf("%s %s %s: %w", k.name, k.method, u.Redacted(), err)
		}
		defer resp.Body.Close()
		c.Skew.Observe(resp.Header, time.Now())
		if resp.StatusCode >= 400 || (resp.StatusCode >= 300 && !k.noRedirect) {
			apiErr := newAPIError(k.method, u, resp)
			if resp.StatusCode >= 500 {
				return nil, apiErr
			}
			if resp.StatusCode == http.StatusUnauthorized && (c.Skew.Offset()-signedWith).Abs() >= ClockSkewDeadband {
				// Most likely a Hawk timestamp out of the allowed skew, and
				// this answer's Date taught us the services' clock: sign again.
				return nil, apiErr
			}
			return nil, backoff.Permanent(apiErr)
		}
		if k.out != nil {
			data, err := io.ReadAll(resp.Body)
			if err != nil {
				return nil, fmt.Errorf("%s: reading response: %w", k.name, err)
			}
			if err := json.Unmarshal(data, k.out); err != nil && !k.lenient {
				return nil, backoff.Permanent(fmt.Errorf("%s: decoding response: %w", k.name, err))
			}
		} else {
			// Drain so the connection can be reused.
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
		}
		return resp, nil
	}
	return c.retry(ctx, k.name, attempt)
}

// retry runs attempt with the client's backoff policy. On context end the
// error wraps both the context's cause and the last attempt's error.
func (c *Client) retry(ctx context.Context, name string, attempt func() (*http.Response, error)) (*http.Response, error) {
	var last error
	n := 0
	op := func() (*http.Response, error) {
		n++
		resp, err := attempt()
		if err != nil {
			last = err
		}
		return resp, err
	}
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = durationOr(c.InitialInterval, DefaultInitialInterval)
	b.MaxInterval = durationOr(c.MaxInterval, DefaultMaxInterval)
	maxElapsed := durationOr(c.MaxElapsedTime, DefaultMaxElapsedTime)
	if c.MaxElapsedTime < 0 {
		maxElapsed = 0
	}
	resp, err := backoff.Retry(ctx, op,
		backoff.WithBackOff(b),
		backoff.WithMaxElapsedTime(maxElapsed),
		backoff.WithNotify(func(err error, next time.Duration) {
			c.logger().DebugContext(ctx, "retrying taskcluster call", "call", name, "attempt", n, "next", next, "error", err)
		}))
	if err != nil && ctx.Err() != nil && last != nil && !errors.Is(err, last) {
		return nil, fmt.Errorf("%s: %w (after %d attempts, last error: %w)", name, err, n, last)
	}
	return resp, err
}

// Sign sets req's User-Agent (when the client has one) and its Hawk
// Authorization header from the current credentials (with the client's
// AuthorizedScopes, on the services' clock when Skew is set); without
// credentials it leaves req unsigned. The payload is not hashed, as
// Taskcluster's clients do.
func (c *Client) Sign(req *http.Request) error {
	if c.UserAgent != "" {
		req.Header.Set("User-Agent", c.UserAgent)
	}
	if c.Credentials == nil {
		return nil
	}
	creds := c.Credentials()
	if creds == nil {
		return nil
	}
	cr := *creds
	if c.AuthorizedScopes != nil {
		cr.AuthorizedScopes = c.AuthorizedScopes
	}
	h, err := hawk.SignHeader(cr, hawk.RequestFromURL(req.Method, req.URL), c.now(), "")
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", h)
	return nil
}

// Forward sends the request newReq builds (called once per attempt, so
// its body can be replayed) to any URL, signed with the client's
// credentials, and returns the answer with its body unread (the caller
// closes it). Redirects are passed back, not followed. Network errors and
// 5xx answers are retried like every call, and end as an error (an
// *APIError for the last 5xx); a host name that does not exist and TLS
// failures end it at once. 2xx, 3xx and 4xx answers are returned as they
// are. Attempts are not bounded by AttemptTimeout: ctx bounds them.
// It is the transport of a Taskcluster proxy that signs a task's requests.
func (c *Client) Forward(ctx context.Context, name string, newReq func(ctx context.Context) (*http.Request, error)) (*http.Response, error) {
	nc := *c.httpClient()
	nc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	attempt := func() (*http.Response, error) {
		req, err := newReq(ctx)
		if err != nil {
			return nil, backoff.Permanent(fmt.Errorf("%s: %w", name, err))
		}
		if err := c.Sign(req); err != nil {
			return nil, backoff.Permanent(fmt.Errorf("%s: signing request: %w", name, err))
		}
		resp, err := nc.Do(req)
		if err != nil {
			err = fmt.Errorf("%s %s %s: %w", name, req.Method, req.URL.Redacted(), err)
			if unreachable(err) {
				return nil, backoff.Permanent(err)
			}
			return nil, err
		}
		c.Skew.Observe(resp.Header, time.Now())
		if resp.StatusCode >= 500 {
			defer resp.Body.Close()
			return nil, newAPIError(req.Method, req.URL, resp)
		}
		return resp, nil
	}
	return c.retry(ctx, name, attempt)
}

// unreachable tells errors that retrying cannot mend: a host name that
// does not exist, and a server that does not speak TLS or whose
// certificate is not trusted.
func unreachable(err error) bool {
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
		return true
	}
	var certErr *tls.CertificateVerificationError
	var recErr tls.RecordHeaderError
	return errors.As(err, &certErr) || errors.As(err, &recErr) ||
		strings.Contains(err.Error(), "server gave HTTP response to HTTPS client")
}

// SignedURL returns u with a bewit valid for ttl, signed with the current
// credentials; u is returned unchanged without credentials.
func (c *Client) SignedURL(u *url.URL, ttl time.Duration) (*url.URL, error) {
	if c.Credentials == nil || c.Credentials() == nil {
		return u, nil
	}
	cr := *c.Credentials()
	if c.AuthorizedScopes != nil {
		cr.AuthorizedScopes = c.AuthorizedScopes
	}
	return hawk.SignURL(cr, u, c.now(), ttl)
}

// CloseIdleConnections closes the idle keep-alive connections of the
// client's HTTP client (e.g. before a goroutine leak check at shutdown).
func (c *Client) CloseIdleConnections() { c.httpClient().CloseIdleConnections() }

func (c *Client) httpClient() *http.Client {
	if c.HTTPClient != nil {
		return c.HTTPClient
	}
	return defaultHTTPClient
}

func (c *Client) logger() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.Default()
}

func (c *Client) now() time.Time {
	if c.Now != nil {
		return c.Skew.Remote(c.Now())
	}
	return c.Skew.Remote(time.Now())
}

// newTraceID returns a random v4 UUID.
func newTraceID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms.
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

func durationOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}
