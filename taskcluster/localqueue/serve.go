package localqueue

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// Running is a Server listening on a TCP address (see Start).
type Running struct {
	*Server
	// URL is the server's base URL: the rootUrl for workers, e.g.
	// "http://127.0.0.1:41234".
	URL string

	hs   *http.Server
	errc chan error
}

// Start opens a Server (New) and serves it on addr (e.g. "127.0.0.1:8080";
// port 0 picks a free one) in the background. When opts.BaseURL is empty
// it is set from the listening address. Stop it with Stop.
func Start(addr string, opts Options) (*Running, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("localqueue listening on %s: %w", addr, err)
	}
	if opts.BaseURL == "" {
		opts.BaseURL = "http://" + ln.Addr().String()
	}
	s, err := New(opts)
	if err != nil {
		_ = ln.Close()
		return nil, err
	}
	ln, h := serveProtected(ln, s.Handler(), opts)
	r := &Running{
		Server: s,
		URL:    opts.BaseURL,
		hs:     &http.Server{Handler: h, ReadHeaderTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute},
		errc:   make(chan error, 1),
	}
	go func() { r.errc <- r.hs.Serve(ln) }()
	s.log.Info("localqueue serving", "rootUrl", r.URL, "dir", opts.Dir)
	return r, nil
}

// Stop closes the Server (which releases claimWork long polls), shuts the
// HTTP server down gracefully within ctx, and waits for it. It may be
// called once.
func (r *Running) Stop(ctx context.Context) error {
	closeErr := r.Server.Close()
	err := r.hs.Shutdown(ctx)
	if err != nil {
		_ = r.hs.Close()
	}
	serveErr := <-r.errc
	if errors.Is(serveErr, http.ErrServerClosed) {
		serveErr = nil
	}
	return errors.Join(closeErr, err, serveErr)
}

// wait blocks until ctx ends (nil) or the HTTP server stops on its own
// (its error, left for Stop to collect too).
func (r *Running) wait(ctx context.Context) error {
	select {
	case err := <-r.errc:
		r.errc <- err
		return err
	case <-ctx.Done():
		return nil
	}
}

// ListenAndServe runs a Server on addr (see Start) until ctx ends, then
// stops it (Stop, with 10 seconds for in-flight requests). ready, if not
// nil, is called once the server accepts connections, with the Server and
// its base URL (the rootUrl for workers).
func ListenAndServe(ctx context.Context, addr string, opts Options, ready func(s *Server, baseURL string)) error {
	r, err := Start(addr, opts)
	if err != nil {
		return err
	}
	if ready != nil {
		ready(r.Server, r.URL)
	}
	werr := r.wait(ctx)
	stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return errors.Join(werr, r.Stop(stopCtx))
}
