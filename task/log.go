package task

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// Log is a task log: the bytes a task writes (stdout and stderr, unchanged:
// no line-length limit, invalid UTF-8 and a last line without newline kept)
// interleaved with lines the worker writes through Systemf.
//
// Log is safe for concurrent use. Writes go straight to the underlying
// writer (normally the backing log file) and to every live reader attached
// with Tee; nothing is buffered in memory.
type Log struct {
	mu     sync.Mutex
	w      io.Writer
	tees   []io.Writer
	size   int64
	lastNL bool // whether the last byte written was '\n' (true when empty)
	err    error
}

// NewLog returns a Log writing to w.
func NewLog(w io.Writer) *Log { return &Log{w: w, lastNL: true} }

// Write appends p to the log unchanged. After the first error from the
// underlying writer, every later Write returns that error.
func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.write(p)
}

func (l *Log) write(p []byte) (int, error) {
	if l.err != nil {
		return 0, l.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	n, err := l.w.Write(p)
	l.size += int64(n)
	if n > 0 {
		l.lastNL = p[n-1] == '\n'
	}
	for _, t := range l.tees {
		_, _ = t.Write(p[:n]) // a slow or gone live reader never fails the task log
	}
	if err != nil {
		l.err = fmt.Errorf("writing task log: %w", err)
		return n, l.err
	}
	return n, nil
}

// Systemf writes one worker line, "[workergen <UTC time>] <message>\n". If
// the task's output so far does not end in a newline, a newline is written
// first so the task's last line stays intact.
func (l *Log) Systemf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	line := make([]byte, 0, 128)
	if !l.lastNL {
		line = append(line, '\n')
	}
	line = append(line, "[workergen "...)
	line = time.Now().UTC().AppendFormat(line, "2006-01-02T15:04:05.000Z")
	line = append(line, "] "...)
	line = fmt.Appendf(line, format, args...)
	if line[len(line)-1] != '\n' {
		line = append(line, '\n')
	}
	_, _ = l.write(line)
}

// Tee attaches w: every later write is copied to it (errors from w are
// ignored). It returns a function that detaches w.
func (l *Log) Tee(w io.Writer) (detach func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.tees = append(l.tees, w)
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		for i, t := range l.tees {
			if t == w {
				l.tees = append(l.tees[:i], l.tees[i+1:]...)
				return
			}
		}
	}
}

// Size returns the number of bytes written so far.
func (l *Log) Size() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.size
}
