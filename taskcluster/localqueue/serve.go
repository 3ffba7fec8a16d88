package localqueue

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// ListenAndServe runs a Server on addr (e.g. "127.0.0.1:8080"; port 0
// picks a free one) until ctx ends, then shuts the HTTP server down
// gracefully (long polls are released) and closes the Server. When
// opts.BaseURL is empty it is set from the listening address. ready, if
// not nil, is called with the running Server and its base URL (the rootUrl
// for workers) once it accepts connections.
func ListenAndServe(ctx context.Context, addr string, opts Options, ready func(s *Server, baseURL string)) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("localqueue listening on %s: %w", addr, err)
	}
	if opts.BaseURL == "" {
		opts.BaseURL = "http://" + ln.Addr().String()
	}
	s, err := New(opts)
	if err != nil {
		_ = ln.Close()
		return err
	}
	hs := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 30 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	s.log.Info("localqueue serving", "rootUrl", opts.BaseURL, "dir", opts.Dir)
	if ready != nil {
		ready(s, opts.BaseURL)
	}
	select {
	case err = <-errc:
	case <-ctx.Done():
		// Release long polls first so Shutdown does not wait for them.
		closeErr := s.Close()
		shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err = errors.Join(hs.Shutdown(shutCtx), closeErr)
		<-errc
		return err
	}
	return errors.Join(err, s.Close())
}
