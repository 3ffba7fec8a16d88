package worker

import (
	"log/slog"
	"sync"
	"time"
)

// DefaultOutageReminder is how often a Queue outage is logged again while
// it lasts (Worker.OutageReminder).
const DefaultOutageReminder = 45 * time.Second

// outageLog turns the failures of the worker's Queue calls (claimWork,
// reclaimTask, the resolutions) into three kinds of log lines: a warning
// when an outage starts (the first failed call after a success, naming
// the call and its error), a warning every reminder interval while it
// lasts (duration, retries so far, the last failed call and error), and an
// info line when it ends (the first call that succeeds again, with the
// outage's duration and retry count). Only failures the worker retries
// count (network errors, 5xx, 408, 429); refusals the caller handles
// otherwise (401, 403, 409) do not. Durations are time.Duration
// attributes: "3.2s" in text logs, integers of nanoseconds in JSON ones,
// as every duration of the worker log. Safe for concurrent use; the zero
// value is not usable (newOutageLog); a nil *outageLog logs nothing.
type outageLog struct {
	logger   func() *slog.Logger
	interval time.Duration

	mu       sync.Mutex
	start    time.Time // zero: no outage
	retries  int       // failed calls since start
	lastCall string
	lastErr  error
	timer    *time.Timer // the next reminder
	stopped  bool
}

func newOutageLog(logger func() *slog.Logger, interval time.Duration) *outageLog {
	if interval <= 0 {
		interval = DefaultOutageReminder
	}
	return &outageLog{logger: logger, interval: interval}
}

// failed records a failed call (call: the API method, e.g. "claimWork";
// log: the logger of whoever made it, with its attributes, for the start
// line).
func (o *outageLog) failed(log *slog.Logger, call string, err error) {
	if o == nil {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.retries++
	o.lastCall, o.lastErr = call, err
	if !o.start.IsZero() {
		return
	}
	o.start = time.Now()
	o.retries = 1
	log.Warn("Queue outage: calls to the Queue are failing; retrying", "call", call, "error", err)
	if !o.stopped {
		o.timer = time.AfterFunc(o.interval, o.remind)
	}
}

// remind logs that the outage goes on, and schedules the next reminder.
func (o *outageLog) remind() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.start.IsZero() || o.stopped {
		return
	}
	o.logger().Warn("Queue outage continues", "for", time.Since(o.start).Round(time.Second),
		"retries", o.retries, "call", o.lastCall, "error", o.lastErr)
	o.timer = time.AfterFunc(o.interval, o.remind)
}

// succeeded records a call that worked: the end of an outage, if any.
func (o *outageLog) succeeded(call string) {
	if o == nil {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.start.IsZero() {
		return
	}
	o.logger().Info("Queue outage over: calls to the Queue succeed again", "call", call,
		"duration", time.Since(o.start).Round(time.Millisecond), "retries", o.retries)
	o.start = time.Time{}
	if o.timer != nil {
		o.timer.Stop()
	}
}

// stop ends the reminders (Work returning).
func (o *outageLog) stop() {
	if o == nil {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.stopped = true
	if o.timer != nil {
		o.timer.Stop()
	}
}
