//go:build unix && !linux

package native

import (
	"errors"
	"os"
	"os/exec"
	"syscall"

	"github.com/workergen/workergen/task"
)

// platformEnvRules: macOS and the BSDs limit the total size of arguments
// and environment (ARG_MAX), not one entry; E2BIG at start reports it.
func platformEnvRules() envRules { return envRules{} }

func growPipe(*os.File) {}

func platformInit(*Engine, Config) {}

func newContainment(*Engine, *task.Context) containment { return nil }

// wait reaps the main process. Its process group stays addressable while
// any member lives; once it is empty it is forgotten, so a later kill cannot
// reach a group that reused the ID.
func (p *proc) wait() exitStatus {
	err := p.cmd.Wait()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return exitStatus{err: err}
	}
	st := p.cmd.ProcessState
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		p.forgetIfEmpty()
		return exitStatus{code: -1, signal: signalName(ws.Signal())}
	}
	p.forgetIfEmpty()
	return exitStatus{code: st.ExitCode()}
}

func (p *proc) forgetIfEmpty() {
	if err := syscall.Kill(-p.pgid, 0); errors.Is(err, syscall.ESRCH) {
		p.pgid = 0
	}
}

// release forgets the group: the process was reaped in wait.
func (p *proc) release() { p.pgid = 0 }
