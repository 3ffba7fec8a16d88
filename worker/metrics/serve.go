package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Server serves a Recorder's metrics over HTTP.
type Server struct {
	srv  *http.Server
	addr net.Addr
	done chan struct{}
}

// Serve listens on listen (host:port, e.g. "127.0.0.1:9100" or ":9100";
// port 0 picks a free one) and serves r's metrics at /metrics in the
// background until Close. Errors (a malformed address, a port in use)
// name the address and config key metrics.listen. log receives a line
// when serving stops by itself (nil: slog.Default()).
func (r *Recorder) Serve(listen string, log *slog.Logger) (*Server, error) {
	if r == nil {
		return nil, errors.New("metrics: no recorder")
	}
	if log == nil {
		log = slog.Default()
	}
	if _, _, err := net.SplitHostPort(listen); err != nil {
		return nil, fmt.Errorf("config.metrics.listen: %q is not host:port (e.g. 127.0.0.1:9100, or :9100 for every interface): %w", listen, err)
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("config.metrics.listen: cannot listen on %q (a port in use, or an address not of this host?): %w", listen, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", textFormat)
		r.WritePrometheus(w)
	})
	s := &Server{
		srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, WriteTimeout: time.Minute,
			ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)},
		addr: ln.Addr(),
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics endpoint stopped", "listen", listen, "error", err)
		}
	}()
	return s, nil
}

// Addr is the address listened on (with the port chosen for port 0).
func (s *Server) Addr() net.Addr { return s.addr }

// URL is the metrics endpoint's http:// URL.
func (s *Server) URL() string { return "http://" + s.addr.String() + "/metrics" }

// Close stops serving: a scrape under way gets up to a second to finish.
func (s *Server) Close() error {
	if s == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if err != nil {
		err = s.srv.Close()
	}
	<-s.done
	return err
}

// textFormat is the Content-Type of Prometheus' text exposition format.
const textFormat = "text/plain; version=0.0.4; charset=utf-8"
