package worker

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/workergen/workergen/task"
	"github.com/workergen/workergen/taskcluster"
	"github.com/workergen/workergen/worker/metrics"
)

// logConfig is how the worker logs: the config's logFormat, logLevel and
// logFile, and the -v flag.
type logConfig struct {
	Format  string // "text" or "json"; "" is text
	Level   string // "debug", "info", "warn", "error"; "" is the command's default
	File    string // appended to as well when set
	Verbose bool   // debug level, whatever Level says
}

// logConfigOf is the log config of cfg with the -v flag verbose.
func logConfigOf(cfg *Config, verbose bool) logConfig {
	return logConfig{Format: cfg.LogFormat, Level: cfg.LogLevel, File: cfg.LogFile, Verbose: verbose}
}

// level is the level to log at: debug with -v, else Level, else def.
func (lc logConfig) level(def slog.Level) slog.Level {
	var l slog.Level
	switch {
	case lc.Verbose:
		return slog.LevelDebug
	case lc.Level != "" && l.UnmarshalText([]byte(lc.Level)) == nil:
		return l
	}
	return def
}

// newLogHandler returns a handler writing the worker log to w in format
// ("json", else text) at level.
func newLogHandler(w io.Writer, format string, level slog.Level) slog.Handler {
	o := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.NewJSONHandler(w, o)
	}
	return slog.NewTextHandler(w, o)
}

// logFileMode is the mode a new log file is created with (before the
// umask): the worker's user writes, its group reads.
const logFileMode = 0o640

// openLogFile opens the config's logFile for appending, creating it when
// missing. The error names the config key and the fix.
func openLogFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, logFileMode)
	if err != nil {
		return nil, fmt.Errorf("%w: config.logFile: cannot open %q for appending (its directory must exist and be writable by the worker's user): %w", ErrConfig, path, err)
	}
	return f, nil
}

// teeLogFile returns out plus, when lc.File is set, that file in the same
// format and level, and a function closing the file.
func teeLogFile(out slog.Handler, level slog.Level, lc logConfig) (slog.Handler, func(), error) {
	if lc.File == "" {
		return out, func() {}, nil
	}
	f, err := openLogFile(lc.File)
	if err != nil {
		return nil, nil, err
	}
	tee := slog.NewMultiHandler(out, newLogHandler(f, lc.Format, level))
	return orderedHandler{mu: new(sync.Mutex), h: tee}, func() { _ = f.Close() }, nil
}

// orderedHandler hands one record at a time to h, so that each of a
// multi-handler's outputs (stderr, logFile) gets the lines of goroutines
// logging at once in the same order.
type orderedHandler struct {
	mu *sync.Mutex // shared by the handlers WithAttrs and WithGroup derive
	h  slog.Handler
}

func (o orderedHandler) Enabled(ctx context.Context, l slog.Level) bool { return o.h.Enabled(ctx, l) }

func (o orderedHandler) Handle(ctx context.Context, r slog.Record) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.h.Handle(ctx, r)
}

func (o orderedHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return orderedHandler{mu: o.mu, h: o.h.WithAttrs(as)}
}

func (o orderedHandler) WithGroup(name string) slog.Handler {
	return orderedHandler{mu: o.mu, h: o.h.WithGroup(name)}
}

// metricsInfo is what workergen_build_info says about build b.
func metricsInfo(b Build) metrics.Info {
	return metrics.Info{Version: version, Profile: b.Profile, Engine: b.Engine.Name}
}

// setupTelemetry sets up what the config asks of a claiming worker: its
// log (logFormat, logFile, -v; see runnerSession.logger) and its metrics
// endpoint (metrics.listen; rec is nil without one). first is called with
// the log before the endpoint starts, so the worker's first line is its
// own. stop closes both. Errors wrap ErrConfig and name the config key.
func setupTelemetry(b Build, cfg *Config, sess *runnerSession, stderr io.Writer, verbose bool, first func(*slog.Logger)) (log *slog.Logger, rec *metrics.Recorder, stop func(), err error) {
	log, closeLog, err := sess.logger(stderr, logConfigOf(cfg, verbose))
	if err != nil {
		return nil, nil, nil, err
	}
	sess.setLogger(log)
	first(log)
	rec, stopMetrics, err := startMetrics(b, cfg, sess, log)
	if err != nil {
		closeLog()
		return nil, nil, nil, err
	}
	return log, rec, func() { stopMetrics(); closeLog() }, nil
}

// startMetrics serves the metrics of a claiming worker when cfg.Metrics.Listen
// is set: the recorder (nil when off), and a function stopping the
// endpoint. Under worker-runner the session's protocol messages are
// counted too. A bad listen address is an error naming metrics.listen.
func startMetrics(b Build, cfg *Config, sess *runnerSession, log *slog.Logger) (*metrics.Recorder, func(), error) {
	if cfg.Metrics.Listen == "" {
		return nil, func() {}, nil
	}
	rec := metrics.New(metricsInfo(b))
	rec.SetCapacity(max(cfg.Capacity, 1))
	if sess != nil {
		rec.RunnerMessages(sess.conn.MessageCounts)
	}
	srv, err := rec.Serve(cfg.Metrics.Listen, log)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	log.Info("serving Prometheus metrics", "url", srv.URL())
	return rec, func() { _ = srv.Close() }, nil
}

// observeClaim records a claimWork call that asked for asked runs: its
// metrics, and a debug line with the answer.
func (l *claimLoop) observeClaim(asked int, started time.Time, resp *taskcluster.ClaimWorkResponse, err error) {
	d := time.Since(started)
	claimed := 0
	if resp != nil {
		claimed = len(resp.Tasks)
	}
	l.w.Metrics.ClaimWork(d, claimed, taskcluster.StatusCode(err), err)
	if err == nil {
		l.w.logger().Debug("claimWork answered", "asked", asked, "claimed", claimed, "duration", d)
	}
}

// observeReclaim records a reclaimTask call in the metrics.
func (w *Worker) observeReclaim(started time.Time, err error) {
	w.Metrics.ReclaimTask(time.Since(started), taskcluster.StatusCode(err), err)
}

// observeResolved records a resolution the Queue accepted: its metrics,
// with the run's time since it was claimed.
func (w *Worker) observeResolved(ar *activeRun, res task.Resolution) {
	reason := string(res.Reason)
	if res.State != task.Exception {
		reason = string(res.State) // Taskcluster's reasonResolved
	}
	w.Metrics.TaskResolved(string(res.State), reason, time.Since(ar.claimedAt))
}
