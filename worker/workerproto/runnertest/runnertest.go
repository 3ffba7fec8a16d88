// Package runnertest plays worker-runner (`start-worker`) against a
// worker, for tests: it is written from the protocol reference
// (references/worker-runner/workerproto-README.md), not from package
// workerproto, so that the two check each other.
//
// Life cycle: Start runs a worker binary with its stdin and stdout piped
// to the Runner, or New drives any reader/writer pair (an in-process
// worker); both send `welcome` at once, as worker-runner does. Hello waits
// for the worker's `hello`; then the test sends graceful-termination and
// new-credentials, waits for the worker's messages with WaitFor, and reads
// everything collected (Messages, Output, Violations). Wait ends with the
// worker's output (and process).
//
// StartStaticWorker goes further and plays worker-runner with a static
// provider against a worker-manager (e.g. taskcluster/localqueue's):
// registerWorker, generic-worker's config file, `run --config FILE
// --with-worker-runner`, removeWorker on `shutdown`, reportWorkerError on
// `error-report`, and RenewCredentials (reregisterWorker, then
// `new-credentials`).
package runnertest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"
)

// The capabilities of the reference, with the direction of their messages.
var (
	// ToWorker are the capabilities whose messages the runner sends.
	ToWorker = []string{"graceful-termination", "new-credentials"}
	// FromWorker are the capabilities whose messages the worker sends.
	FromWorker = []string{"error-report", "log", "shutdown"}
	// All is every capability, as worker-runner offers generic-worker.
	All = []string{"error-report", "graceful-termination", "log", "new-credentials", "shutdown"}
)

// Message is one protocol message as the runner read it: its JSON object,
// "type" included.
type Message map[string]any

// Type is the message's "type".
func (m Message) Type() string { s, _ := m["type"].(string); return s }

// String returns the message's JSON.
func (m Message) String() string { b, _ := json.Marshal(map[string]any(m)); return string(b) }

// Options configure a Runner.
type Options struct {
	// Capabilities are offered in `welcome`; nil offers All, an empty
	// slice none.
	Capabilities []string
	// OnMessage, when set, is called on the reading goroutine with every
	// message the worker sends after its `hello`, e.g. to call
	// worker-manager on `shutdown` as worker-runner does.
	OnMessage func(Message)
	// Output, when set, also receives every line of the worker's output
	// that is not a message, with its newline.
	Output io.Writer
}

// Runner is worker-runner's end of the protocol. It is safe for concurrent
// use.
type Runner struct {
	opts    Options
	offered []string
	toW     io.Writer
	closeW  func() error
	cmd     *exec.Cmd

	wmu  sync.Mutex
	sent []Sent // guarded by wmu

	mu         sync.Mutex
	changed    chan struct{} // closed and replaced whenever state changes
	hello      []string
	helloSeen  bool
	messages   []Message
	output     []string
	violations []string
	readErr    error
	done       chan struct{}
}

// New starts reading the worker's output from fromWorker and sends
// `welcome` to toWorker. It returns the error of writing `welcome`.
func New(fromWorker io.Reader, toWorker io.Writer, opts Options) (*Runner, error) {
	r := &Runner{
		opts: opts, offered: opts.Capabilities, toW: toWorker,
		changed: make(chan struct{}), done: make(chan struct{}),
	}
	if r.offered == nil {
		r.offered = All
	}
	if c, ok := toWorker.(io.Closer); ok {
		r.closeW = c.Close
	}
	go r.read(fromWorker)
	if err := r.sendLine(map[string]any{"type": "welcome", "capabilities": r.offered}); err != nil {
		return r, err
	}
	return r, nil
}

// Start starts cmd with its stdin and stdout connected to a new Runner
// (cmd.Stdin and cmd.Stdout must be unset; cmd.Stderr is the caller's) and
// sends `welcome`.
func Start(cmd *exec.Cmd, opts Options) (*Runner, error) {
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("runnertest: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("runnertest: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("runnertest: starting worker: %w", err)
	}
	r, err := New(stdout, stdin, opts)
	r.cmd = cmd
	return r, err
}

func (r *Runner) read(from io.Reader) {
	br := bufio.NewReader(from)
	var err error
	for {
		var line string
		line, err = br.ReadString('\n')
		if line != "" {
			r.line(line)
		}
		if err != nil {
			break
		}
	}
	r.mu.Lock()
	if !errors.Is(err, io.EOF) {
		r.readErr = err
	}
	close(r.done)
	r.notifyLocked()
	r.mu.Unlock()
}

// line handles one line of the worker's output: the reference's rule is
// that a line `~{...}` whose JSON has a "type" is a message, and any other
// line is logged.
func (r *Runner) line(raw string) {
	text := strings.TrimRight(raw, "\r\n")
	var m Message
	if !strings.HasPrefix(text, "~{") || !strings.HasSuffix(text, "}") ||
		json.Unmarshal([]byte(text[1:]), &m) != nil || m.Type() == "" {
		r.mu.Lock()
		r.output = append(r.output, text)
		r.notifyLocked()
		r.mu.Unlock()
		if r.opts.Output != nil {
			_, _ = io.WriteString(r.opts.Output, text+"\n")
		}
		return
	}
	r.mu.Lock()
	r.messages = append(r.messages, m)
	r.check(m)
	helloSeen := r.helloSeen
	r.notifyLocked()
	r.mu.Unlock()
	if helloSeen && m.Type() != "hello" && r.opts.OnMessage != nil {
		r.opts.OnMessage(m)
	}
}

// check records the message's breaches of the protocol; r.mu is held.
func (r *Runner) check(m Message) {
	violate := func(format string, args ...any) {
		r.violations = append(r.violations, fmt.Sprintf(format, args...)+": "+m.String())
	}
	switch typ := m.Type(); {
	case typ == "hello":
		if r.helloSeen {
			violate("second hello")
			return
		}
		r.helloSeen = true
		caps, ok := stringList(m["capabilities"])
		if !ok {
			violate("hello without a capabilities array")
		}
		for _, c := range caps {
			if !slices.Contains(r.offered, c) {
				violate("hello lists %q, which welcome did not offer", c)
			}
		}
		r.hello = caps
	case !r.helloSeen:
		violate("message before hello")
	case slices.Contains(ToWorker, typ) || typ == "welcome":
		violate("worker sent a runner's message")
	case slices.Contains(FromWorker, typ) && !slices.Contains(r.hello, typ):
		violate("capability %q was not agreed", typ)
	}
}

func stringList(v any) ([]string, bool) {
	list, ok := v.([]any)
	if !ok {
		return nil, false
	}
	out := make([]string, 0, len(list))
	for _, x := range list {
		s, ok := x.(string)
		if !ok {
			return nil, false
		}
		out = append(out, s)
	}
	return out, true
}

func (r *Runner) notifyLocked() {
	close(r.changed)
	r.changed = make(chan struct{})
}

// await calls cond under the lock whenever the state changes until it
// returns true, the worker's output ends (errEnded), or ctx ends.
func (r *Runner) await(ctx context.Context, cond func() bool) error {
	for {
		r.mu.Lock()
		ok, changed := cond(), r.changed
		ended := isClosed(r.done)
		r.mu.Unlock()
		if ok {
			return nil
		}
		if ended {
			return errEnded
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

var errEnded = errors.New("runnertest: the worker's output ended")

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// Hello waits for the worker's `hello` and returns its capabilities.
func (r *Runner) Hello(ctx context.Context) ([]string, error) {
	var caps []string
	err := r.await(ctx, func() bool { caps = r.hello; return r.helloSeen })
	if err != nil {
		return nil, fmt.Errorf("waiting for hello: %w", err)
	}
	return caps, nil
}

// Capable reports whether the worker's `hello` listed name.
func (r *Runner) Capable(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Contains(r.hello, name)
}

// Send sends a message of type typ with props beside "type". Before
// `hello`, or when typ is a capability the worker did not agree to, it
// returns an error instead: the reference forbids both.
func (r *Runner) Send(typ string, props map[string]any) error {
	r.mu.Lock()
	ok := r.helloSeen && slices.Contains(r.hello, typ)
	r.mu.Unlock()
	if !ok {
		return fmt.Errorf("runnertest: not sending %s: capability not agreed", typ)
	}
	m := map[string]any{"type": typ}
	for k, v := range props {
		m[k] = v
	}
	return r.sendLine(m)
}

// GracefulTermination sends `graceful-termination` with finish-tasks.
func (r *Runner) GracefulTermination(finishTasks bool) error {
	return r.Send("graceful-termination", map[string]any{"finish-tasks": finishTasks})
}

// NewCredentials sends `new-credentials`; an empty certificate is left
// out.
func (r *Runner) NewCredentials(clientID, accessToken, certificate string) error {
	props := map[string]any{"client-id": clientID, "access-token": accessToken}
	if certificate != "" {
		props["certificate"] = certificate
	}
	return r.Send("new-credentials", props)
}

// SendLine writes line and a newline to the worker as they are, whatever
// the protocol says: for tests of what a worker does with bad input.
func (r *Runner) SendLine(line string) error {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	_, err := io.WriteString(r.toW, line+"\n")
	return err
}

func (r *Runner) sendLine(m map[string]any) error {
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("runnertest: encoding %v: %w", m["type"], err)
	}
	if err := r.SendLine("~" + string(b)); err != nil {
		return err
	}
	r.wmu.Lock()
	r.sent = append(r.sent, Sent{Type: m["type"].(string), At: time.Now()})
	r.wmu.Unlock()
	return nil
}

// Sent is a message the Runner sent, with when its line was written.
type Sent struct {
	Type string
	At   time.Time
}

// SentMessages returns the messages sent so far (welcome included), in
// order, for timings such as new-credentials to first use.
func (r *Runner) SentMessages() []Sent {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	return slices.Clone(r.sent)
}

// CloseInput closes the worker's input (its stdin), as worker-runner's
// exit would; it is a no-op when the writer given to New is no io.Closer.
func (r *Runner) CloseInput() error {
	if r.closeW == nil {
		return nil
	}
	return r.closeW()
}

// WaitFor waits until a message of type typ has come (after hello) and
// returns the first one.
func (r *Runner) WaitFor(ctx context.Context, typ string) (Message, error) {
	var found Message
	err := r.await(ctx, func() bool {
		for _, m := range r.messages {
			if m.Type() == typ {
				found = m
				return true
			}
		}
		return false
	})
	if err != nil {
		return nil, fmt.Errorf("waiting for %s: %w", typ, err)
	}
	return found, nil
}

// WaitOutput waits until a line of output not a message contains substr
// and returns it.
func (r *Runner) WaitOutput(ctx context.Context, substr string) (string, error) {
	var found string
	err := r.await(ctx, func() bool {
		for _, l := range r.output {
			if strings.Contains(l, substr) {
				found = l
				return true
			}
		}
		return false
	})
	if err != nil {
		return "", fmt.Errorf("waiting for output %q: %w", substr, err)
	}
	return found, nil
}

// Messages returns the messages received so far whose type is typ, or all
// of them (hello included) when typ is "".
func (r *Runner) Messages(typ string) []Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Message
	for _, m := range r.messages {
		if typ == "" || m.Type() == typ {
			out = append(out, m)
		}
	}
	return out
}

// Output returns the lines of the worker's output that were not messages,
// without their line endings.
func (r *Runner) Output() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.output)
}

// Violations returns the worker's breaches of the protocol so far: a
// message before `hello`, a second `hello`, `hello` listing a capability
// not offered, a message of a capability not agreed, a runner's message
// sent by the worker. Unknown message types are allowed.
func (r *Runner) Violations() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.violations)
}

// Done is closed when the worker's output has ended.
func (r *Runner) Done() <-chan struct{} { return r.done }

// Wait waits for the worker's output to end and, for a Runner made by
// Start, for the process to exit; it returns the exec error (an
// *exec.ExitError for a non-zero exit) or the read error.
func (r *Runner) Wait() error {
	<-r.done
	if r.cmd != nil {
		return r.cmd.Wait()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.readErr
}
