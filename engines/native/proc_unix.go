//go:build unix

package native

import (
	"errors"
	"fmt"
	"os/exec"
	"syscall"
)

// proc is one command's main process and its process group.
type proc struct {
	cmd  *exec.Cmd
	pgid int
}

// startProc starts c as the leader of a new process group.
func startProc(c *exec.Cmd) (*proc, error) {
	if c.SysProcAttr == nil {
		c.SysProcAttr = &syscall.SysProcAttr{}
	}
	c.SysProcAttr.Setpgid = true
	if err := c.Start(); err != nil {
		return nil, err
	}
	return &proc{cmd: c, pgid: c.Process.Pid}, nil
}

// kill sends SIGKILL to the command's whole process group. A group that no
// longer exists is not an error.
func (p *proc) kill() error {
	if p.pgid <= 0 {
		return nil
	}
	err := syscall.Kill(-p.pgid, syscall.SIGKILL)
	if err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("killing process group %d: %w", p.pgid, err)
	}
	return nil
}

func signalName(sig syscall.Signal) string {
	return fmt.Sprintf("%d (%v)", int(sig), sig)
}

// setCmdLine is only used on Windows.
func setCmdLine(*exec.Cmd, string) {}
