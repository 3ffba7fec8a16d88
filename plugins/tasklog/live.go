package tasklog

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// LiveConfig is the `liveLog` section of the plugin's config: where the
// worker serves running tasks' logs. While a task runs, `logs.live` is a
// `reference` artifact to <publicURL>/log/<token> (token: 32 random
// bytes, URL-safe base64), which streams the log as it is written
// (text/plain, chunked) and ends when the task's log is complete; at the
// end of the run the artifact becomes a link to the backing log.
type LiveConfig struct {
	// ListenAddress is the TCP address to serve on, e.g. ":60098" or
	// "127.0.0.1:0"; empty disables live logs.
	ListenAddress string `json:"listenAddress,omitempty"`
	// PublicURL is the base URL task log readers reach the server at, e.g.
	// "https://worker-17.example.com:60098"; empty means
	// "http://<listen address>".
	PublicURL string `json:"publicURL,omitempty"`
}

// liveServer serves the logs of running tasks.
type liveServer struct {
	srv     *http.Server
	baseURL string
	log     *slog.Logger

	mu      sync.Mutex
	streams map[string]*stream
}

// stream is one run's live log.
type stream struct {
	path    string
	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every write
	done    bool
}

func startLiveServer(c LiveConfig, log *slog.Logger) (*liveServer, error) {
	ln, err := net.Listen("tcp", c.ListenAddress)
	if err != nil {
		return nil, fmt.Errorf("liveLog.listenAddress: %w", err)
	}
	base := strings.TrimRight(c.PublicURL, "/")
	if base == "" {
		base = "http://" + ln.Addr().String()
	}
	ls := &liveServer{baseURL: base, log: log, streams: map[string]*stream{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /log/{token}", ls.serve)
	ls.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 30 * time.Second}
	go func() {
		if err := ls.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("live log server stopped", "error", err)
		}
	}()
	return ls, nil
}

func (ls *liveServer) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ls.mu.Lock()
	for _, s := range ls.streams {
		s.finish()
	}
	ls.mu.Unlock()
	if err := ls.srv.Shutdown(ctx); err != nil {
		// Readers that stopped reading hold their handlers in a write:
		// cut their connections.
		return ls.srv.Close()
	}
	return nil
}

// open registers a stream of the log file at path and returns its URL and
// the stream (whose Write method is a notification tee for task.Log).
func (ls *liveServer) open(path string) (string, *stream, func()) {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	token := base64.RawURLEncoding.EncodeToString(b)
	s := &stream{path: path, changed: make(chan struct{})}
	ls.mu.Lock()
	ls.streams[token] = s
	ls.mu.Unlock()
	remove := func() {
		s.finish()
		ls.mu.Lock()
		delete(ls.streams, token)
		ls.mu.Unlock()
	}
	return ls.baseURL + "/log/" + token, s, remove
}

// Write notifies readers that the log grew; it never fails.
func (s *stream) Write(p []byte) (int, error) {
	s.mu.Lock()
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	return len(p), nil
}

func (s *stream) finish() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.done {
		s.done = true
		close(s.changed)
	}
}

// state returns whether the log is complete and a channel closed at the
// next change.
func (s *stream) state() (bool, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.done, s.changed
}

// liveWriteTimeout bounds one write to a live log reader.
const liveWriteTimeout = 30 * time.Second

func (ls *liveServer) serve(w http.ResponseWriter, r *http.Request) {
	ls.mu.Lock()
	s := ls.streams[r.PathValue("token")]
	ls.mu.Unlock()
	if s == nil {
		http.Error(w, "no such live log (the task may have finished: read the backing log artifact)", http.StatusNotFound)
		return
	}
	f, err := os.Open(s.path)
	if err != nil {
		http.Error(w, "task log unavailable", http.StatusInternalServerError)
		return
	}
	defer f.Close()
	// Only a file opened while the stream is registered is surely this
	// run's log: once the run has ended, the worker may reuse the file
	// for a later run (worker/rundir.go), and an open that raced with the
	// stream's removal may have reached it then.
	ls.mu.Lock()
	registered := ls.streams[r.PathValue("token")] == s
	ls.mu.Unlock()
	if !registered {
		http.Error(w, "no such live log (the task may have finished: read the backing log artifact)", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", ContentType)
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	rc := http.NewResponseController(w)
	buf := make([]byte, 64<<10)
	for {
		done, changed := s.state()
		for {
			n, err := f.Read(buf)
			if n > 0 {
				// A reader that stops reading must not hold this handler
				// (and the log file) forever.
				_ = rc.SetWriteDeadline(time.Now().Add(liveWriteTimeout))
				if _, werr := w.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				return
			}
		}
		_ = rc.Flush()
		if done {
			return
		}
		select {
		case <-changed:
		case <-r.Context().Done():
			return
		}
	}
}
