package localqueue

import (
	"io"
	"net"
	"net/http"
	"time"

	"golang.org/x/net/netutil"
)

// Defaults of Start's protection against slow clients.
const (
	// DefaultMaxConnections is Options.MaxConnections' default.
	DefaultMaxConnections = 16384
	// DefaultBodyReadTimeout is Options.BodyReadTimeout's default.
	DefaultBodyReadTimeout = 30 * time.Second
	// MinBodyProgress is how many bytes of a request body must arrive
	// within each Options.BodyReadTimeout.
	MinBodyProgress = 16 << 10
	// fdReserve are open files kept free for the database, blobs and
	// the process itself when the connection bound is derived from
	// RLIMIT_NOFILE.
	fdReserve = 256
)

// maxConnections is the connection bound for o: o.MaxConnections, or the
// default lowered to fit below the open-file limit.
func maxConnections(o Options) int {
	if o.MaxConnections > 0 {
		return o.MaxConnections
	}
	n := DefaultMaxConnections
	if lim, err := openFileLimit(); err == nil && lim < uint64(n+fdReserve) {
		n = max(int(lim)-fdReserve, 16)
	}
	return n
}

// serveProtected wraps ln and h for Start: at most maxConnections(o)
// connections open at once (netutil.LimitListener) and request bodies
// that must keep arriving (withBodyDeadline).
func serveProtected(ln net.Listener, h http.Handler, o Options) (net.Listener, http.Handler) {
	d := o.BodyReadTimeout
	if d <= 0 {
		d = DefaultBodyReadTimeout
	}
	return netutil.LimitListener(ln, maxConnections(o)), withBodyDeadline(h, d)
}

// withBodyDeadline sets a read deadline on the connection of every request
// with a body: d from now, moved d further each time MinBodyProgress more
// bytes arrived, cleared when the body has been read. A body that stalls
// fails with a timeout and the server closes the connection.
func withBodyDeadline(h http.Handler, d time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			rc := http.NewResponseController(w)
			if rc.SetReadDeadline(time.Now().Add(d)) == nil {
				r.Body = &deadlineBody{ReadCloser: r.Body, rc: rc, d: d}
			}
		}
		h.ServeHTTP(w, r)
	})
}

type deadlineBody struct {
	io.ReadCloser
	rc    *http.ResponseController
	d     time.Duration
	since int // bytes since the deadline was last moved
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.since += n
	if err == io.EOF {
		// The whole body is in: no deadline while the handler works
		// (claimWork long-polls); the next request's header has its own.
		_ = b.rc.SetReadDeadline(time.Time{})
	} else if b.since >= MinBodyProgress {
		b.since = 0
		_ = b.rc.SetReadDeadline(time.Now().Add(b.d))
	}
	return n, err
}
