package sandboxstate_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/engines/sandboxstate"
)

// result is a minimal engines.ResultSet.
type result struct {
	engines.ResultSet
	killed bool
}

// counter is a StopFunc that counts its calls.
type counter struct {
	n       atomic.Int32
	stopped bool
	err     error
}

func (c *counter) stop() (bool, error) {
	c.n.Add(1)
	return c.stopped, c.err
}

func wantStop(t *testing.T, s *sandboxstate.State, want sandboxstate.Stop) {
	t.Helper()
	if got := s.Stopped(); got != want {
		t.Errorf("Stopped() = %v, want %v", got, want)
	}
}

func wait(t *testing.T, s *sandboxstate.State) (engines.ResultSet, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return s.Wait(ctx)
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func TestEndsOnItsOwn(t *testing.T) {
	s := sandboxstate.New()
	if isClosed(s.Done()) || isClosed(s.Stopping()) {
		t.Fatal("a new state is done or stopping")
	}
	if got := s.End(); got != sandboxstate.None {
		t.Errorf("End() = %v, want none", got)
	}
	res := &result{}
	s.Finish(res, nil)
	s.Finish(&result{}, errors.New("second Finish")) // ignored
	for range 3 {
		if got, err := wait(t, s); got != res || err != nil {
			t.Errorf("Wait() = %v, %v; want the result", got, err)
		}
	}
	var c counter
	c.stopped = true
	if err := s.Kill(c.stop); err != nil {
		t.Errorf("Kill after the end: %v", err)
	}
	if err := s.Abort(c.stop); err != nil {
		t.Errorf("Abort after the end: %v", err)
	}
	if c.n.Load() != 0 {
		t.Errorf("stop called %d times after the end", c.n.Load())
	}
	if got, err := wait(t, s); got != res || err != nil {
		t.Errorf("Wait() after Kill and Abort of an ended task = %v, %v; want the result", got, err)
	}
	wantStop(t, s, sandboxstate.None)
	if isClosed(s.Stopping()) {
		t.Error("Stopping closed by a stop after the end")
	}
}

func TestKill(t *testing.T) {
	s := sandboxstate.New()
	c := counter{stopped: true}
	for range 3 {
		if err := s.Kill(c.stop); err != nil {
			t.Fatalf("Kill: %v", err)
		}
	}
	if c.n.Load() != 1 {
		t.Errorf("stop called %d times, want 1", c.n.Load())
	}
	if !isClosed(s.Stopping()) {
		t.Error("Stopping not closed after Kill")
	}
	if got := s.End(); got != sandboxstate.Killed {
		t.Errorf("End() = %v, want killed", got)
	}
	res := &result{killed: true}
	s.Finish(res, nil)
	if got, err := wait(t, s); got != res || err != nil {
		t.Errorf("Wait() = %v, %v; want the result", got, err)
	}
	if s.Aborted() {
		t.Error("Aborted() after Kill")
	}
}

func TestAbort(t *testing.T) {
	s := sandboxstate.New()
	c := counter{stopped: true}
	for range 3 {
		if err := s.Abort(c.stop); err != nil {
			t.Fatalf("Abort: %v", err)
		}
	}
	if err := s.Kill(c.stop); err != nil {
		t.Fatalf("Kill after Abort: %v", err)
	}
	if c.n.Load() != 1 {
		t.Errorf("stop called %d times, want 1", c.n.Load())
	}
	wantStop(t, s, sandboxstate.Aborted)
	s.Finish(&result{}, nil)
	for range 2 {
		if got, err := wait(t, s); !errors.Is(err, engines.ErrAborted) {
			t.Errorf("Wait() = %v, %v; want ErrAborted", got, err)
		}
	}
	if !s.Aborted() {
		t.Error("Aborted() = false")
	}
}

func TestAbortAfterKill(t *testing.T) {
	s := sandboxstate.New()
	var kills, aborts counter
	kills.stopped, aborts.stopped = true, true
	_ = s.Kill(kills.stop)
	_ = s.Abort(aborts.stop)
	_ = s.Abort(aborts.stop)
	if kills.n.Load() != 1 || aborts.n.Load() != 1 {
		t.Errorf("kill stop called %d times, abort stop %d times; want 1 and 1", kills.n.Load(), aborts.n.Load())
	}
	if got := s.End(); got != sandboxstate.Aborted {
		t.Errorf("End() = %v, want aborted", got)
	}
	s.Finish(&result{killed: true}, nil)
	if _, err := wait(t, s); !errors.Is(err, engines.ErrAborted) {
		t.Errorf("Wait() error = %v, want ErrAborted", err)
	}
}

func TestStopNotDone(t *testing.T) {
	s := sandboxstate.New()
	failure := errors.New("daemon unreachable")
	c := counter{err: failure}
	if err := s.Kill(c.stop); !errors.Is(err, failure) {
		t.Errorf("Kill() = %v, want the stop's error", err)
	}
	wantStop(t, s, sandboxstate.None)
	if isClosed(s.Stopping()) {
		t.Error("Stopping closed by a stop that did not stop")
	}
	c.err = nil // found already ended: nothing recorded, no error
	if err := s.Kill(c.stop); err != nil {
		t.Errorf("Kill() = %v", err)
	}
	wantStop(t, s, sandboxstate.None)
	c.stopped = true
	if err := s.Kill(c.stop); err != nil {
		t.Errorf("Kill() = %v", err)
	}
	if c.n.Load() != 3 {
		t.Errorf("stop called %d times, want 3 (each failed stop is retried)", c.n.Load())
	}
	wantStop(t, s, sandboxstate.Killed)
}

func TestStoppedWithErrorStopStillRecorded(t *testing.T) {
	s := sandboxstate.New()
	failure := errors.New("one process could not be killed")
	if err := s.Abort(func() (bool, error) { return true, failure }); !errors.Is(err, failure) {
		t.Errorf("Abort() = %v, want the stop's error", err)
	}
	wantStop(t, s, sandboxstate.Aborted)
}

func TestNilStopRecords(t *testing.T) {
	s := sandboxstate.New()
	if err := s.Kill(nil); err != nil {
		t.Fatal(err)
	}
	wantStop(t, s, sandboxstate.Killed)
	if err := s.Abort(nil); err != nil {
		t.Fatal(err)
	}
	wantStop(t, s, sandboxstate.Aborted)
}

func TestFinishWithError(t *testing.T) {
	failure := errors.New("waiting for the container")
	s := sandboxstate.New()
	s.Finish(nil, failure)
	if _, err := wait(t, s); !errors.Is(err, failure) {
		t.Errorf("Wait() error = %v, want the run's error", err)
	}
	if s.Aborted() {
		t.Error("Aborted() before any Abort")
	}
	_ = s.Kill(nil)
	if _, err := wait(t, s); !errors.Is(err, failure) {
		t.Errorf("Wait() after Kill error = %v, want the run's error", err)
	}
	// A run that ended with an error has no result to keep: Abort
	// discards the error too.
	var c counter
	if err := s.Abort(c.stop); err != nil {
		t.Fatal(err)
	}
	if c.n.Load() != 0 {
		t.Error("stop called after the end")
	}
	if !s.Aborted() {
		t.Error("Aborted() = false after Abort of a run that ended with an error")
	}
	if _, err := wait(t, s); !errors.Is(err, engines.ErrAborted) {
		t.Errorf("Wait() error = %v, want ErrAborted", err)
	}
}

func TestAbortBetweenEndAndFinish(t *testing.T) {
	for _, tc := range []struct {
		name    string
		err     error
		aborted bool
	}{
		{"result", nil, false},
		{"error", errors.New("inspect failed"), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := sandboxstate.New()
			s.End()
			var c counter
			_ = s.Abort(c.stop)
			if c.n.Load() != 0 {
				t.Error("stop called after End")
			}
			s.Finish(&result{}, tc.err)
			if s.Aborted() != tc.aborted {
				t.Errorf("Aborted() = %v, want %v", s.Aborted(), tc.aborted)
			}
		})
	}
}

func TestWaitContext(t *testing.T) {
	s := sandboxstate.New()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Wait() error = %v, want context.Canceled", err)
	}
	s.Finish(&result{}, nil)
	if _, err := wait(t, s); err != nil {
		t.Errorf("Wait() after Finish: %v", err)
	}
}

// TestConcurrent kills and aborts from many goroutines while the task
// ends: Stopping closes once, no stop function runs after End, the stop
// End returns is the one Wait reflects, and every Wait returns the same.
func TestConcurrent(t *testing.T) {
	for i := range 200 {
		s := sandboxstate.New()
		var ended atomic.Bool
		var lateStops atomic.Int32
		stop := func() (bool, error) {
			if ended.Load() {
				lateStops.Add(1)
			}
			return true, nil
		}
		var wg sync.WaitGroup
		for j := range 8 {
			wg.Go(func() {
				if (i+j)%3 == 0 {
					_ = s.Abort(stop)
				} else {
					_ = s.Kill(stop)
				}
				_ = s.Stopped()
			})
		}
		var final sandboxstate.Stop
		wg.Go(func() {
			if i%2 == 0 {
				select {
				case <-s.Stopping():
				case <-time.After(time.Millisecond):
				}
			}
			s.Locked(func(sandboxstate.Stop) {})
			final = s.End()
			ended.Store(true)
			s.Finish(&result{killed: final == sandboxstate.Killed}, nil)
		})
		results := make(chan error, 4)
		for range 4 {
			wg.Go(func() {
				_, err := wait(t, s)
				results <- err
			})
		}
		wg.Wait()
		close(results)
		if lateStops.Load() != 0 {
			t.Fatalf("iteration %d: %d stop functions ran after End", i, lateStops.Load())
		}
		for err := range results {
			if aborted := errors.Is(err, engines.ErrAborted); aborted != (final == sandboxstate.Aborted) {
				t.Fatalf("iteration %d: Wait() error %v with End() = %v", i, err, final)
			}
		}
		if final != sandboxstate.None && !isClosed(s.Stopping()) {
			t.Fatalf("iteration %d: %v recorded but Stopping not closed", i, final)
		}
	}
}
