//go:build unix

package native

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"

	"github.com/creack/pty"

	"github.com/workergen/workergen/engines"
)

var _ engines.ShellSandbox = (*sandbox)(nil)

// Shell starts an interactive shell (bash when the task's PATH has it,
// else /bin/sh) on a new pseudo-terminal, in the task directory with the
// task's environment and, on Linux, in the run's cgroup. The shell leads a
// session of its own (a controlling terminal needs one) and is killed, with
// its process group, when the task ends, is killed or aborted, or when ctx
// ends. It returns an error wrapping engines.ErrNotRunning once the task
// has ended.
func (s *sandbox) Shell(ctx context.Context, size engines.TermSize) (engines.Shell, error) {
	pathEnv, _ := lookupEnv(s.env, "PATH", s.e.rules)
	sh := "/bin/sh"
	if p, _, err := lookPath("bash", pathEnv, s.tc.TaskDir); err == nil {
		sh = p
	}
	c := &exec.Cmd{Path: sh, Args: []string{sh}, Env: s.env, Dir: s.tc.TaskDir,
		SysProcAttr: &syscall.SysProcAttr{Setsid: true, Setctty: true}}
	if s.cont != nil {
		s.cont.prepare(c)
	}
	var (
		ps       *ptyShell
		startErr error
	)
	running := s.state.IfRunning(func() {
		f, err := pty.StartWithAttrs(c, &pty.Winsize{Rows: size.Rows, Cols: size.Cols}, c.SysProcAttr)
		if err != nil {
			startErr = fmt.Errorf("starting interactive shell %s: %w", sh, err)
			return
		}
		ps = &ptyShell{cmd: c, pty: f, done: make(chan struct{})}
		s.shells = append(s.shells, ps)
	})
	if !running {
		return nil, fmt.Errorf("interactive shell: %w", engines.ErrNotRunning)
	}
	if startErr != nil {
		return nil, startErr
	}
	go ps.wait()
	go func() {
		select {
		case <-ctx.Done():
			_ = ps.Close()
		case <-ps.done:
		}
	}()
	return ps, nil
}

// closeShells ends every interactive shell of the run. Called with the
// state locked (kill) or after the task ended (finish).
func (s *sandbox) closeShells() {
	for _, sh := range s.shells {
		_ = sh.Close()
	}
}

// ptyShell is a shell process on a pseudo-terminal.
type ptyShell struct {
	cmd  *exec.Cmd
	pty  *os.File
	done chan struct{}

	mu     sync.Mutex
	exited bool
	closed bool
}

var _ engines.Shell = (*ptyShell)(nil)

func (p *ptyShell) wait() {
	_ = p.cmd.Wait()
	p.mu.Lock()
	p.exited = true
	p.mu.Unlock()
	close(p.done)
}

// Read reads terminal output. Once the shell and everything it started have
// exited, it returns an error (EIO on Linux, which means end of output).
func (p *ptyShell) Read(b []byte) (int, error) { return p.pty.Read(b) }

// Write types b into the terminal.
func (p *ptyShell) Write(b []byte) (int, error) { return p.pty.Write(b) }

// Resize sets the terminal size.
func (p *ptyShell) Resize(size engines.TermSize) error {
	return pty.Setsize(p.pty, &pty.Winsize{Rows: size.Rows, Cols: size.Cols})
}

// Done is closed when the shell process has exited.
func (p *ptyShell) Done() <-chan struct{} { return p.done }

// Close kills the shell's process group (its session's processes that
// stayed in it) and closes the terminal.
func (p *ptyShell) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var err error
	if !p.exited {
		if kerr := syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL); kerr != nil && !errors.Is(kerr, syscall.ESRCH) {
			err = fmt.Errorf("killing interactive shell: %w", kerr)
		}
	}
	if !p.closed {
		p.closed = true
		_ = p.pty.Close()
	}
	return err
}
