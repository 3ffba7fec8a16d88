package workerproto

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
)

// ErrNotCapable is returned by Send for a message whose capability this
// run does not have (or before Start has finished, or on a nil *Conn).
var ErrNotCapable = errors.New("worker-runner protocol: capability not agreed")

// ErrNoPipes is DialPipe's error on systems without Windows named pipes.
var ErrNoPipes = errors.New("named pipes exist only on Windows")

// Conn is the worker's end of the protocol. See the package documentation
// for its life cycle.
type Conn struct {
	r       io.Reader
	offered []string

	wmu     sync.Mutex // serialises writes to w and guards partial
	w       io.Writer
	partial []byte // Output text not yet ended by a newline

	mu          sync.Mutex
	started     bool
	caps        map[string]bool // agreed capabilities, set once by Start
	passthrough io.Writer
	onGraceful  func(GracefulTermination)
	onCreds     func(NewCredentials)
	pending     map[string]Message // latest message awaiting a handler
	err         error

	done chan struct{}

	cmu    sync.Mutex
	counts map[countKey]uint64 // messages by direction and type
}

type countKey struct{ direction, msgType string }

// New returns a connection reading the runner's messages from r (the
// worker's stdin, or the pipe) and writing to w (the worker's stdout, or
// the pipe). capabilities are those the worker supports; the run's are
// those the runner's `welcome` also lists.
func New(r io.Reader, w io.Writer, capabilities ...string) *Conn {
	return &Conn{
		r: r, w: w, offered: slices.Clone(capabilities),
		passthrough: io.Discard,
		pending:     map[string]Message{},
		done:        make(chan struct{}),
	}
}

// SetPassthrough sets where lines read from the runner that are not
// protocol messages go (default: discarded), each with its newline.
func (c *Conn) SetPassthrough(w io.Writer) {
	c.mu.Lock()
	c.passthrough = w
	c.mu.Unlock()
}

// OnGracefulTermination sets the handler of `graceful-termination`. It is
// called on the reading goroutine and must not block; a message that came
// before any handler was set is handed to the handler when it is set.
func (c *Conn) OnGracefulTermination(f func(GracefulTermination)) {
	c.mu.Lock()
	c.onGraceful = f
	m, ok := c.pending[CapGracefulTermination]
	delete(c.pending, CapGracefulTermination)
	c.mu.Unlock()
	if ok && f != nil {
		f(m.(GracefulTermination))
	}
}

// OnNewCredentials sets the handler of `new-credentials`, with the same
// rules as OnGracefulTermination (only the latest early message is kept).
func (c *Conn) OnNewCredentials(f func(NewCredentials)) {
	c.mu.Lock()
	c.onCreds = f
	m, ok := c.pending[CapNewCredentials]
	delete(c.pending, CapNewCredentials)
	c.mu.Unlock()
	if ok && f != nil {
		f(m.(NewCredentials))
	}
}

// Start performs the handshake: it reads until the runner's `welcome`
// (earlier lines are passed through, earlier messages ignored), sends
// `hello` with the capabilities both sides have, and then keeps reading in
// the background. It returns an error when the input ends or fails before
// `welcome`, when `hello` cannot be written, or when ctx ends first (the
// background reader then stays blocked on r until r is closed).
func (c *Conn) Start(ctx context.Context) error {
	c.mu.Lock()
	if c.started {
		c.mu.Unlock()
		return errors.New("worker-runner protocol: already started")
	}
	c.started = true
	c.mu.Unlock()

	welcome := make(chan Welcome, 1)
	go c.read(welcome)
	var wel Welcome
	select {
	case wel = <-welcome:
	case <-c.done:
		return fmt.Errorf("worker-runner protocol: input ended before welcome: %w", c.Err())
	case <-ctx.Done():
		return fmt.Errorf("worker-runner protocol: waiting for welcome: %w", ctx.Err())
	}
	agreed := map[string]bool{}
	hello := Hello{Capabilities: []string{}}
	for _, cap := range c.offered {
		if slices.Contains(wel.Capabilities, cap) && !agreed[cap] {
			agreed[cap] = true
			hello.Capabilities = append(hello.Capabilities, cap)
		}
	}
	// Agreed before hello is written: the runner may use a capability as
	// soon as it reads hello.
	c.mu.Lock()
	c.caps = agreed
	c.mu.Unlock()
	if err := c.write(hello); err != nil {
		c.mu.Lock()
		c.caps = nil
		c.mu.Unlock()
		return err
	}
	return nil
}

// read decodes lines until r ends, handing the first welcome to welcome
// and later messages to dispatch.
func (c *Conn) read(welcome chan<- Welcome) {
	br := bufio.NewReader(c.r)
	welcomed := false
	var err error
	for {
		var line []byte
		line, err = br.ReadBytes('\n')
		if len(line) > 0 {
			m, ok := Decode(line)
			if ok {
				c.count("received", m)
			}
			switch {
			case !ok:
				c.passThrough(line)
			case !welcomed:
				if w, isWelcome := m.(Welcome); isWelcome {
					welcomed = true
					welcome <- w
				}
			default:
				c.dispatch(m)
			}
		}
		if err != nil {
			break
		}
	}
	if errors.Is(err, io.EOF) {
		err = io.EOF
	}
	c.mu.Lock()
	c.err = err
	c.mu.Unlock()
	close(c.done)
}

func (c *Conn) passThrough(line []byte) {
	if line[len(line)-1] != '\n' {
		line = append(line, '\n')
	}
	c.mu.Lock()
	w := c.passthrough
	c.mu.Unlock()
	_, _ = w.Write(line)
}

// dispatch hands a message from the runner to its handler; messages of
// capabilities not agreed, of unknown types and of the handshake are
// dropped.
func (c *Conn) dispatch(m Message) {
	c.mu.Lock()
	if !c.caps[m.Capability()] {
		c.mu.Unlock()
		return
	}
	switch v := m.(type) {
	case GracefulTermination:
		f := c.onGraceful
		if f == nil {
			c.pending[v.Type()] = v
		}
		c.mu.Unlock()
		if f != nil {
			f(v)
		}
	case NewCredentials:
		f := c.onCreds
		if f == nil {
			c.pending[v.Type()] = v
		}
		c.mu.Unlock()
		if f != nil {
			f(v)
		}
	default:
		c.mu.Unlock()
	}
}

// Capable reports whether this run has the capability name; it is false
// before Start has finished and on a nil *Conn.
func (c *Conn) Capable(name string) bool {
	if c == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.caps[name]
}

// Capabilities returns the capabilities of this run (nil before Start has
// finished).
func (c *Conn) Capabilities() []string {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, cap := range AllCapabilities {
		if c.caps[cap] {
			out = append(out, cap)
		}
	}
	for cap := range c.caps {
		if !slices.Contains(out, cap) {
			out = append(out, cap)
		}
	}
	return out
}

// Send writes m to the runner. It returns ErrNotCapable (wrapped) when m's
// capability was not agreed, and the write error otherwise.
func (c *Conn) Send(m Message) error {
	if c == nil || m.Capability() == "" || !c.Capable(m.Capability()) {
		return fmt.Errorf("sending %s: %w", m.Type(), ErrNotCapable)
	}
	return c.write(m)
}

func (c *Conn) write(m Message) error {
	line, err := Encode(m)
	if err != nil {
		return err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if _, err := c.w.Write(line); err != nil {
		return fmt.Errorf("worker-runner protocol: writing %s: %w", m.Type(), err)
	}
	c.count("sent", m)
	return nil
}

// count adds m to the messages of direction; messages of unknown types
// count as type "unknown".
func (c *Conn) count(direction string, m Message) {
	t := m.Type()
	if _, unknown := m.(Unknown); unknown {
		t = "unknown"
	}
	c.cmu.Lock()
	defer c.cmu.Unlock()
	if c.counts == nil {
		c.counts = map[countKey]uint64{}
	}
	c.counts[countKey{direction, t}]++
}

// MessageCounts calls f with the number of messages written ("sent") and
// read ("received") so far, once per direction and message type that
// occurred, sorted by direction and type (handshake included; messages of
// types this package does not know count as "unknown"). f must not call
// back into c.
func (c *Conn) MessageCounts(f func(direction, msgType string, n uint64)) {
	if c == nil {
		return
	}
	c.cmu.Lock()
	keys := slices.SortedFunc(maps.Keys(c.counts), func(a, b countKey) int {
		return cmp.Or(cmp.Compare(a.direction, b.direction), cmp.Compare(a.msgType, b.msgType))
	})
	ns := make([]uint64, len(keys))
	for i, k := range keys {
		ns[i] = c.counts[k]
	}
	c.cmu.Unlock()
	for i, k := range keys {
		f(k.direction, k.msgType, ns[i])
	}
}

// Done is closed when the runner's input has ended (EOF or a read error).
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err is why the input ended: io.EOF when the runner closed it, nil while
// it is open.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Output returns a writer for the worker's text output to the runner
// (which logs each line). It holds text back until a newline so that a
// message never lands in the middle of a line, and writes a line that
// would read as a message ("~{...}") with a leading space so the runner
// does not take it for one. Flush writes held-back text.
func (c *Conn) Output() io.Writer { return outputWriter{c} }

type outputWriter struct{ c *Conn }

func (o outputWriter) Write(p []byte) (int, error) {
	c := o.c
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.partial = append(c.partial, p...)
	i := bytes.LastIndexByte(c.partial, '\n')
	if i < 0 {
		return len(p), nil
	}
	lines := c.partial[:i+1]
	rest := slices.Clone(c.partial[i+1:])
	if err := c.writeLines(lines); err != nil {
		return 0, err
	}
	c.partial = rest
	return len(p), nil
}

// writeLines writes complete lines, escaping message look-alikes; wmu is
// held.
func (c *Conn) writeLines(lines []byte) error {
	var out []byte
	for len(lines) > 0 {
		i := bytes.IndexByte(lines, '\n')
		line := lines[:i+1]
		lines = lines[i+1:]
		if bytes.HasPrefix(line, []byte("~")) {
			out = append(out, ' ')
		}
		out = append(out, line...)
	}
	_, err := c.w.Write(out)
	return err
}

// Flush writes text given to Output that has no newline yet, ending it
// with one.
func (c *Conn) Flush() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if len(c.partial) == 0 {
		return nil
	}
	line := append(c.partial, '\n')
	c.partial = nil
	return c.writeLines(line)
}
