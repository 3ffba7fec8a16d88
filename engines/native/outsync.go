package native

import (
	"bytes"
	"crypto/rand"
	"io"
	"os"
	"sync/atomic"
	"time"
)

// outputSync keeps worker lines ("command 1/2 exited with code 3") in order
// with the task's own output. The task's stdout and stderr reach the log
// through a pipe read by another goroutine, so when a command exits its
// last bytes may still sit in the pipe. To wait for them, the engine writes
// a random 16-byte token into the same pipe (one write, smaller than
// PIPE_BUF, so atomic) and waits until the reader has reached it: every
// byte the command wrote before exiting came before the token.
//
// A read may end inside a token, so the reader holds back a tail of output
// that could be the start of one, but only while a token is in flight:
// otherwise a task's last line whose final bytes happen to match the
// token's first ones ("\n" against a token starting 0x0a, 1 in 256) would
// sit unseen until the task writes again, which a sleeping task never does.
type outputSync struct {
	token   [16]byte
	seen    chan struct{} // receives one value per token the reader passed
	pending atomic.Int32  // tokens written (or being written) not yet passed
}

func newOutputSync() *outputSync {
	s := &outputSync{seen: make(chan struct{}, 1)}
	_, _ = rand.Read(s.token[:])
	return s
}

// syncTimeout bounds the wait for the reader: a background process flooding
// the pipe must not stall the task.
const syncTimeout = 2 * time.Second

// wait writes the token to w and waits until copyOut passed it. The write
// itself is bounded too: a pipe nobody drains must not block the run.
func (o *outputSync) wait(w *os.File) {
	select {
	case <-o.seen: // a token an earlier, timed-out wait left behind
	default:
	}
	o.pending.Add(1) // before the write, so the reader never sees a token unannounced
	_ = w.SetWriteDeadline(time.Now().Add(syncTimeout))
	_, err := w.Write(o.token[:])
	_ = w.SetWriteDeadline(time.Time{})
	if err != nil {
		// A write of at most PIPE_BUF bytes is all or nothing: no token
		// reached the pipe.
		o.pending.Add(-1)
		return
	}
	t := time.NewTimer(syncTimeout)
	defer t.Stop()
	select {
	case <-o.seen:
	case <-t.C:
	}
}

// copyOut copies r to dst like io.CopyBuffer, dropping every token and
// signalling it. A partial token at the end of a read is held back until
// the next read tells whether it is one. After dst fails, the output is
// still read (and discarded) to the end, so the task never blocks on a
// full pipe; the first write error is returned then.
func (o *outputSync) copyOut(dst io.Writer, r io.Reader, buf []byte) error {
	var werr error
	dst = &firstErrWriter{w: dst, err: &werr}
	err := o.copyTokens(dst, r, buf)
	if werr != nil {
		return werr
	}
	return err
}

// firstErrWriter passes writes to w until one fails, then discards.
type firstErrWriter struct {
	w   io.Writer
	err *error
}

func (f *firstErrWriter) Write(p []byte) (int, error) {
	if *f.err == nil {
		if _, err := f.w.Write(p); err != nil {
			*f.err = err
		}
	}
	return len(p), nil
}

func (o *outputSync) copyTokens(dst io.Writer, r io.Reader, buf []byte) error {
	tok := o.token[:]
	held := 0 // bytes at the start of buf carried over from the last read
	for {
		n, rerr := r.Read(buf[held:])
		data := buf[:held+n]
		for {
			i := bytes.Index(data, tok)
			if i < 0 {
				break
			}
			if i > 0 {
				if _, err := dst.Write(data[:i]); err != nil {
					return err
				}
			}
			data = data[i+len(tok):]
			o.pending.Add(-1)
			select {
			case o.seen <- struct{}{}:
			default:
			}
		}
		keep := 0
		if rerr == nil && o.pending.Load() > 0 {
			keep = partialSuffix(data, tok)
		}
		if len(data)-keep > 0 {
			if _, err := dst.Write(data[:len(data)-keep]); err != nil {
				return err
			}
		}
		held = copy(buf, data[len(data)-keep:])
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

// partialSuffix returns the length of the longest suffix of data that is a
// proper prefix of tok.
func partialSuffix(data, tok []byte) int {
	for k := min(len(tok)-1, len(data)); k > 0; k-- {
		if bytes.Equal(data[len(data)-k:], tok[:k]) {
			return k
		}
	}
	return 0
}
