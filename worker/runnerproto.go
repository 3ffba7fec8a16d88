package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/workergen/workergen/taskcluster"
	"github.com/workergen/workergen/worker/workerproto"
)

// runnerSession is the worker's side of worker-runner's protocol for
// `run --config FILE --with-worker-runner` (package workerproto): the
// connection over stdin/stdout or the named pipe, with the worker's
// handlers. A nil *runnerSession is a worker without worker-runner: every
// method is then a no-op.
type runnerSession struct {
	conn   *workerproto.Conn
	closer io.Closer // the pipe, when there is one
	b      Build
	log    *slog.Logger // for debug lines about messages; nil until setLogger
}

// setLogger gives the session the worker's log, for debug lines about the
// messages it sends and receives (never about `log` messages).
func (s *runnerSession) setLogger(log *slog.Logger) {
	if s == nil {
		return
	}
	s.log = log
	log.Debug("worker-runner protocol started", "capabilities", s.conn.Capabilities())
}

// debug writes a debug line when the session has a logger.
func (s *runnerSession) debug(msg string, args ...any) {
	if s.log != nil {
		s.log.Debug(msg, args...)
	}
}

// handshakeTimeout bounds the wait for worker-runner's `welcome`, which it
// sends as soon as it has started the worker.
const handshakeTimeout = time.Minute

// openRunnerSession connects to worker-runner: over the named pipe when
// pipe is set (code ExitProtocolPipe when it cannot be opened), else over
// stdin and stdout, and performs the handshake offering every capability
// generic-worker has (code ExitInternal when no `welcome` comes). Lines
// worker-runner writes that are not messages go to stderr. In stdio mode,
// stdout carries the protocol alone from then on: os.Stdout is pointed at
// stderr so that no other code of the process writes to it.
func openRunnerSession(b Build, pipe string, stdin io.Reader, stdout, stderr io.Writer) (*runnerSession, int, error) {
	s := &runnerSession{b: b}
	r, w := stdin, stdout
	if pipe != "" {
		ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
		defer cancel()
		conn, err := workerproto.DialPipe(ctx, pipe)
		if err != nil {
			return nil, ExitProtocolPipe, fmt.Errorf("--worker-runner-protocol-pipe: %w", err)
		}
		r, w, s.closer = conn, conn, conn
	} else if f, ok := stdout.(*os.File); ok && f == os.Stdout {
		os.Stdout = os.Stderr
	}
	s.conn = workerproto.New(r, w, workerproto.AllCapabilities...)
	s.conn.SetPassthrough(stderr)
	ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
	defer cancel()
	if err := s.conn.Start(ctx); err != nil {
		s.close()
		return nil, ExitInternal, fmt.Errorf("--with-worker-runner: no welcome from worker-runner (is this worker started by worker-runner?): %w", err)
	}
	return s, 0, nil
}

// logger returns the worker's log at lc's level (default info):
// `log` messages when worker-runner takes them, else lc.Format on stderr;
// and appended to lc.File as well when set (closeLog closes it).
func (s *runnerSession) logger(stderr io.Writer, lc logConfig) (l *slog.Logger, closeLog func(), err error) {
	level := lc.level(slog.LevelInfo)
	out := newLogHandler(stderr, lc.Format, level)
	if s != nil {
		out = s.conn.LogHandler(out)
	}
	h, closeLog, err := teeLogFile(out, level, lc)
	if err != nil {
		return nil, nil, err
	}
	return slog.New(h), closeLog, nil
}

// onNewCredentials swaps the worker's credentials in holder on every
// `new-credentials` (a message that came earlier is handled now).
func (s *runnerSession) onNewCredentials(holder *taskcluster.CredentialsHolder, log *slog.Logger) {
	if s == nil {
		return
	}
	s.conn.OnNewCredentials(func(n workerproto.NewCredentials) {
		s.debug("worker-runner message received", "type", workerproto.CapNewCredentials)
		holder.Set(taskcluster.Credentials{ClientID: n.ClientID, AccessToken: n.AccessToken, Certificate: n.Certificate})
		log.Info("worker-runner renewed the worker's credentials; later claimWork and worker-manager calls use them", "clientId", n.ClientID)
	})
}

// onGracefulTermination hands `graceful-termination` to w.
func (s *runnerSession) onGracefulTermination(w *Worker, log *slog.Logger) {
	if s == nil {
		return
	}
	s.conn.OnGracefulTermination(func(g workerproto.GracefulTermination) {
		s.debug("worker-runner message received", "type", workerproto.CapGracefulTermination, "finishTasks", g.FinishTasks)
		log.Info("worker-runner asks for graceful termination", "finishTasks", g.FinishTasks)
		w.GracefulTermination(g.FinishTasks)
	})
}

// Error-report titles, by exit code.
var reportTitles = map[int]string{
	ExitUsage:         "cannot load worker config",
	ExitInvalidConfig: "invalid worker config",
	ExitInternal:      "worker internal error",
}

// reportError sends an `error-report` for the error that ends the worker
// with code: kind "worker-error", a title by code, err's text, and the
// worker's identity in extra.
func (s *runnerSession) reportError(code int, err error) {
	if s == nil || err == nil {
		return
	}
	title := reportTitles[code]
	if title == "" {
		title = fmt.Sprintf("worker exited with code %d", code)
	}
	s.debug("sending worker-runner message", "type", workerproto.CapErrorReport, "title", title)
	_ = s.conn.Send(workerproto.ErrorReport{
		Kind: "worker-error", Title: title, Description: err.Error(),
		Extra: map[string]any{"exitCode": code, "workerImplementation": "workergen", "profile": s.b.Profile, "binary": s.b.Binary, "version": version},
	})
}

// close sends `shutdown` (worker-runner then removes the worker) and ends
// the connection; it is called on every exit path once the session is
// open.
func (s *runnerSession) close() {
	if s == nil {
		return
	}
	s.debug("sending worker-runner message", "type", workerproto.CapShutdown)
	if err := s.conn.Send(workerproto.Shutdown{}); err != nil && !errors.Is(err, workerproto.ErrNotCapable) {
		fmt.Fprintf(os.Stderr, "worker-runner protocol: %v\n", err)
	}
	_ = s.conn.Flush()
	if s.closer != nil {
		_ = s.closer.Close()
	}
}
