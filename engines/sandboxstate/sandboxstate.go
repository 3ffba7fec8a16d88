// Package sandboxstate is the Wait/Kill/Abort state machine of an
// engines.Sandbox, shared by every engine so that each one only says how to
// stop its task and how to build its result.
//
// # Life cycle
//
// An engine makes a State with New when its SandboxBuilder.Start starts the
// task, then:
//
//  1. While the task runs, the Sandbox's Kill and Abort call State.Kill and
//     State.Abort, from any goroutine, any number of times. The first call
//     that counts runs the engine's stop function with the state locked, so
//     it never races the end of the task; Stopping is closed once a stop is
//     recorded, for engines whose task waits on a channel.
//  2. When the task has ended (its processes are gone), the engine calls
//     End, which freezes the stop recorded so far (None, Killed or Aborted)
//     and returns it: from then on Kill and Abort no longer call a stop
//     function, so the engine may release what they would have used.
//  3. The engine builds its engines.ResultSet from that stop (a killed task
//     reports Killed() and exit code -1) and calls Finish once with the
//     result, or with the error Wait should return; Finish ends the task too
//     if End was not called. Done is closed then.
//  4. The Sandbox's Wait calls State.Wait, which blocks until Finish and
//     returns, every time: engines.ErrAborted if Abort was recorded before
//     the end (or was called at any time for a run that ended with an
//     error, which has no result to keep), else Finish's error, else its
//     result.
//
// A stop that comes after the end is a no-op that keeps the result. Abort
// takes precedence over Kill: an Abort after a Kill, while the task still
// runs, is recorded (and its stop function called); a Kill after an Abort is
// a no-op.
package sandboxstate

import (
	"context"
	"sync"

	"github.com/workergen/workergen/engines"
)

// Stop is the stop recorded for a task.
type Stop int

// Stops, in increasing precedence.
const (
	// None: the task was neither killed nor aborted.
	None Stop = iota
	// Killed: Kill stopped the task; its result is kept.
	Killed
	// Aborted: Abort stopped the task; Wait returns engines.ErrAborted.
	Aborted
)

// String is the stop's name: "none", "killed" or "aborted".
func (s Stop) String() string {
	switch s {
	case None:
		return "none"
	case Killed:
		return "killed"
	case Aborted:
		return "aborted"
	}
	return "Stop(?)"
}

// StopFunc stops the task. It is called with the State locked (the State's
// other methods wait for it, so the task cannot end meanwhile), at most once
// per stop that counts. It returns whether the task was stopped: false (the task was
// found to have ended already, or stopping failed) records nothing, so a
// later call tries again. Its error is returned by Kill or Abort.
type StopFunc func() (stopped bool, err error)

// State is the state of one sandbox. Its methods are safe for concurrent
// use. The zero value is not usable: call New.
type State struct {
	mu         sync.Mutex
	stop       Stop
	abortAsked bool // Abort was called, counted or not
	ended      bool
	finished   bool
	res        engines.ResultSet
	err        error

	stopping chan struct{} // closed when the first stop is recorded
	done     chan struct{} // closed by Finish
}

// New returns the state of a running task.
func New() *State {
	return &State{stopping: make(chan struct{}), done: make(chan struct{})}
}

// Kill records a kill of a running task, calling stop (nil means "record
// only") when no stop was recorded before. After the end, or after a Kill
// or Abort was recorded, it does nothing and returns nil.
func (s *State) Kill(stop StopFunc) error { return s.request(Killed, stop) }

// Abort records an abort of a running task, calling stop (nil means "record
// only") when no abort was recorded before, also after a Kill. After the end
// it does nothing (the result stays, unless the run ended with an error, see
// Aborted) and returns nil.
func (s *State) Abort(stop StopFunc) error { return s.request(Aborted, stop) }

func (s *State) request(want Stop, stop StopFunc) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if want == Aborted {
		s.abortAsked = true
	}
	if s.ended || s.stop >= want {
		return nil
	}
	stopped, err := true, error(nil)
	if stop != nil {
		stopped, err = stop()
	}
	if stopped {
		if s.stop == None {
			close(s.stopping)
		}
		s.stop = want
	}
	return err
}

// Stopping returns a channel closed when the first Kill or Abort is
// recorded (never closed for a task that ends on its own).
func (s *State) Stopping() <-chan struct{} { return s.stopping }

// Stopped returns the stop recorded so far.
func (s *State) Stopped() Stop {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stop
}

// Locked calls fn with the state locked and the stop recorded so far, so
// that what fn does (typically: start the next process unless a stop was
// recorded, and remember it for the stop function) cannot interleave with
// a Kill or Abort. fn must not call the State's methods.
func (s *State) Locked(fn func(Stop)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn(s.stop)
}

// IfRunning calls fn with the state locked when the task has neither ended
// nor been stopped, and reports whether it did; engines use it to add a
// process to a running task (an interactive shell) without racing its end.
func (s *State) IfRunning(fn func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended || s.stop != None {
		return false
	}
	fn()
	return true
}

// End records that the task has ended and returns the stop recorded before
// it, which no later Kill or Abort changes. It may be called more than once
// and returns the same value.
func (s *State) End() Stop {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ended = true
	return s.stop
}

// Finish records the run's outcome, result res or error err (err wins when
// both are set), ends the task if End was not called, and releases Wait.
// Only the first call counts.
func (s *State) Finish(res engines.ResultSet, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.finished {
		return
	}
	s.ended, s.finished = true, true
	s.res, s.err = res, err
	close(s.done)
}

// Done returns a channel closed by Finish.
func (s *State) Done() <-chan struct{} { return s.done }

// Aborted reports whether Wait returns engines.ErrAborted (once the run is
// finished): an Abort was recorded before the end, or Abort was called for
// a run that finished with an error.
func (s *State) Aborted() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.aborted()
}

func (s *State) aborted() bool {
	return s.stop == Aborted || s.finished && s.err != nil && s.abortAsked
}

// Wait blocks until Finish and returns the run's outcome: engines.ErrAborted
// when Aborted, else Finish's error, else its result. Every call returns
// the same. ctx only bounds the waiting: when it ends first Wait returns
// ctx.Err().
func (s *State) Wait(ctx context.Context) (engines.ResultSet, error) {
	select {
	case <-s.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.aborted():
		return nil, engines.ErrAborted
	case s.err != nil:
		return nil, s.err
	}
	return s.res, nil
}
