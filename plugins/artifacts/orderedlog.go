package artifacts

import (
	"fmt"
	"sync"
)

// orderedLog writes lines to the task log in the order their slots were
// reserved, while the work producing them finishes in any order: a line is
// written as soon as every earlier slot is done, so the log streams, reads
// the same on every run, and holds at most about as many pending lines as
// there are uploads in flight.
//
// Every reserved slot must be marked done exactly once.
type orderedLog struct {
	write func(line string) // writes one line; called with mu held, in order

	mu       sync.Mutex
	reserved int            // slots handed out
	next     int            // first slot not yet written
	text     map[int]string // lines of slots not yet written
	finished map[int]bool   // slots done but not yet written
}

// reserve returns the next slot.
func (l *orderedLog) reserve() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reserved++
	return l.reserved - 1
}

// note sets the line of slot seq (at most one line per slot).
func (l *orderedLog) note(seq int, format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.text == nil {
		l.text = map[int]string{}
	}
	l.text[seq] = line
}

// done marks slot seq finished and writes every line that is now in order.
func (l *orderedLog) done(seq int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.finished == nil {
		l.finished = map[int]bool{}
	}
	l.finished[seq] = true
	for l.finished[l.next] {
		delete(l.finished, l.next)
		if line, ok := l.text[l.next]; ok {
			delete(l.text, l.next)
			l.write(line)
		}
		l.next++
	}
}

// flush writes the lines of slots never marked done, in order (a safety
// net: every slot should have been done).
func (l *orderedLog) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for ; l.next < l.reserved; l.next++ {
		if line, ok := l.text[l.next]; ok {
			l.write(line)
		}
	}
	l.text, l.finished = nil, nil
}
