package worker

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/workergen/workergen/taskcluster"
)

// ErrStartupCheck marks a Queue that did not answer the start-up check
// (checkQueue); `work` exits ExitInvalidConfig with it, as for a refused
// claimWork: the fix is almost always rootUrl or the network.
var ErrStartupCheck = errors.New("start-up check of the Queue failed")

// Bounds of the start-up check: every attempt at most
// startupAttemptTimeout, all of them at most startupCheckTimeout, so that a
// rootUrl refusing connections, unknown to DNS or not answering ends the
// worker within 10 seconds.
const (
	startupCheckTimeout   = 6 * time.Second
	startupAttemptTimeout = 3 * time.Second
)

// checkQueue is the start-up check, made before recovery and the first
// claimWork: one unauthenticated GET <rootUrl>/api/queue/v1/ping (the
// Queue's ping; retried within startupCheckTimeout while it fails
// transiently). It proves that rootUrl resolves, connects, speaks TLS when
// it is https, and is a Taskcluster deployment with a Queue. The
// credentials and their scopes (queue:claim-work:<workerPoolId>,
// queue:worker-id:<workerGroup>/<workerId>) are proved by the first
// claimWork, which ends the worker at once when refused (claimFailed): the
// Queue has no call that checks them without claiming, and auth's
// currentScopes itself needs auth:current-scopes, which a worker's
// credentials need not hold. The error wraps ErrStartupCheck and names
// rootUrl, the URL tried and what happened; a cancelled ctx is no failure.
func (w *Worker) checkQueue(ctx context.Context) error {
	c := *w.client()
	c.Credentials = nil // ping takes no credentials
	c.MaxElapsedTime = -1
	c.AttemptTimeout = startupAttemptTimeout
	c.InitialInterval, c.MaxInterval = 250*time.Millisecond, 2*time.Second
	u, err := c.ServiceURL("queue", "/ping")
	if err != nil {
		return fmt.Errorf("%w: rootUrl %q: %w", ErrStartupCheck, c.RootURL, err)
	}
	cctx, cancel := context.WithTimeout(ctx, startupCheckTimeout)
	defer cancel()
	start := time.Now()
	err = c.Call(cctx, "queue", "queue.ping", "GET", "/ping", nil, nil, nil)
	switch {
	case err == nil:
		w.logger().Debug("the Queue answered the start-up check", "url", u.String(), "took", time.Since(start).Round(time.Millisecond))
		return nil
	case ctx.Err() != nil:
		return nil // shutting down: Work stops by itself
	}
	hint := "check rootUrl (config key rootUrl, or TASKCLUSTER_ROOT_URL) and that this host reaches it"
	if taskcluster.StatusCode(err) == 404 {
		hint = "rootUrl must be the deployment's root URL, e.g. https://tc.example.com, without /api/..."
	}
	return fmt.Errorf("%w: rootUrl %s: GET %s: %s, gave up after %s: %w; %s",
		ErrStartupCheck, c.RootURL, u, describeFailure(err), time.Since(start).Round(100*time.Millisecond), err, hint)
}

// describeFailure says in a few words why a call failed: the status the
// service answered, or the network's failure (connection refused, DNS,
// TLS, timeout).
func describeFailure(err error) string {
	var apiErr *taskcluster.APIError
	var dnsErr *net.DNSError
	var certErr *tls.CertificateVerificationError
	var recErr tls.RecordHeaderError
	var authErr x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	switch {
	case errors.As(err, &apiErr):
		return fmt.Sprintf("answered %d", apiErr.StatusCode)
	case errors.As(err, &dnsErr):
		return fmt.Sprintf("DNS lookup of %s failed", dnsErr.Name)
	case errors.Is(err, syscall.ECONNREFUSED), strings.Contains(err.Error(), "connection refused"):
		return "connection refused"
	case errors.As(err, &certErr), errors.As(err, &authErr), errors.As(err, &hostErr):
		return "TLS certificate not accepted"
	case errors.As(err, &recErr), strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		return "TLS handshake failed"
	case errors.Is(err, context.DeadlineExceeded), isTimeout(err):
		return "no answer in time"
	}
	return "request failed"
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
