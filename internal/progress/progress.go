// Package progress prints what a long command is doing as it does it: a
// line when a step starts, a "still" line every Printer.Every while it
// runs (so that a silent child such as the Go compiler is bridged), and a
// line with its duration when it ends. `go tool mage` (build, generate,
// demo, test) and the release pipeline print through it.
//
// Lines look like this (tag and note optional; durations as Duration):
//
//	[1/3] start compile dist/hello for linux/amd64 (a cold cache takes minutes)
//	[1/3] still compile dist/hello for linux/amd64 (30s)
//	[1/3] done  compile dist/hello for linux/amd64 in 41.2s: 9.8 MiB
//	[1/3] FAILED compile dist/hello for linux/amd64 after 2.1s: exit status 1
//	    <further lines of the error, indented>
package progress

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// DefaultEvery is New's interval between "still" lines.
const DefaultEvery = 30 * time.Second

// Printer writes progress lines to W, each line whole (safe for concurrent
// use). A nil *Printer prints nothing.
type Printer struct {
	// W receives the lines.
	W io.Writer
	// Every is the interval of "still" lines while a step runs; zero
	// prints none.
	Every time.Duration
	// Now is the clock durations are measured with; nil is time.Now.
	Now func() time.Time

	mu sync.Mutex
}

// New returns a Printer writing to w with "still" lines every
// DefaultEvery.
func New(w io.Writer) *Printer { return &Printer{W: w, Every: DefaultEvery} }

// Printf writes one line (a newline is added).
func (p *Printer) Printf(format string, args ...any) {
	if p == nil || p.W == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.W, format+"\n", args...)
}

func (p *Printer) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

// Step is one running step of a Printer; end it with Done, Fail or End
// (once). The methods of a nil *Step do nothing.
type Step struct {
	p         *Printer
	tag, what string
	start     time.Time
	stop      chan struct{} // closed by the end
	ticker    chan struct{} // closed when the "still" goroutine returned
	mu        sync.Mutex
	shown     bool // the start line was printed
}

// Start prints "[tag ]start <what>[ (<note>)]" and returns the running
// step.
func (p *Printer) Start(tag, what, note string) *Step {
	return p.start(0, tag, what, note)
}

// StartQuiet is Start for a step that is usually quick: its start line is
// printed only once it has run for after, and its end line only when the
// start line was; a step that ends sooner prints nothing.
func (p *Printer) StartQuiet(after time.Duration, tag, what, note string) *Step {
	return p.start(after, tag, what, note)
}

func (p *Printer) start(after time.Duration, tag, what, note string) *Step {
	if p == nil {
		return nil
	}
	s := &Step{p: p, tag: tag, what: what, start: p.now(), stop: make(chan struct{}), ticker: make(chan struct{})}
	startLine := s.prefix("start") + what
	if note != "" {
		startLine += " (" + note + ")"
	}
	if after <= 0 {
		s.shown = true
		p.Printf("%s", startLine)
	}
	go s.tick(after, startLine)
	return s
}

// tick prints the delayed start line, then a "still" line every p.Every,
// until the step ends.
func (s *Step) tick(after time.Duration, startLine string) {
	defer close(s.ticker)
	if after > 0 {
		t := time.NewTimer(after)
		select {
		case <-s.stop:
			t.Stop()
			return
		case <-t.C:
		}
		s.mu.Lock()
		s.shown = true
		s.mu.Unlock()
		s.p.Printf("%s", startLine)
	}
	if s.p.Every <= 0 {
		return
	}
	t := time.NewTicker(s.p.Every)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.p.Printf("%s%s (%s)", s.prefix("still"), s.what, Duration(s.p.now().Sub(s.start)))
		}
	}
}

func (s *Step) prefix(verb string) string {
	if s.tag == "" {
		return verb + " "
	}
	return s.tag + " " + verb + " "
}

// end stops the "still" lines and reports the step's duration and whether
// its start line was printed.
func (s *Step) end() (time.Duration, bool) {
	close(s.stop)
	<-s.ticker
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.p.now().Sub(s.start), s.shown
}

// Done prints "[tag ]done  <what> in <duration>[: <detail>]" and returns
// the duration.
func (s *Step) Done(detail string) time.Duration {
	if s == nil {
		return 0
	}
	d, shown := s.end()
	if shown {
		line := s.prefix("done ") + s.what + " in " + Duration(d)
		if detail != "" {
			line += ": " + detail
		}
		s.p.Printf("%s", line)
	}
	return d
}

// Fail prints "[tag ]FAILED <what> after <duration>: <err>", the error's
// further lines indented by four spaces, and returns the duration. A
// StartQuiet step that fails prints this line even when its start line
// was not printed yet.
func (s *Step) Fail(err error) time.Duration {
	if s == nil {
		return 0
	}
	d, _ := s.end()
	s.p.Printf("%s%s after %s: %s", s.prefix("FAILED"), s.what, Duration(d), strings.ReplaceAll(err.Error(), "\n", "\n    "))
	return d
}

// End is Fail when err is not nil, else Done(detail); it returns err.
func (s *Step) End(err error, detail string) error {
	if err != nil {
		s.Fail(err)
	} else {
		s.Done(detail)
	}
	return err
}

// Duration formats d for a person: tenths of a second below a minute
// ("0.4s", "12.3s"), whole seconds above ("1m30s", "1h2m5s").
func Duration(d time.Duration) string {
	if d < time.Minute {
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	return d.Round(time.Second).String()
}
