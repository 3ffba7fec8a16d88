package native

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/workergen/workergen/task"
)

// platformEnvRules: Linux's execve refuses any argv or envp string longer
// than MAX_ARG_STRLEN (32 pages, NUL included) with E2BIG.
func platformEnvRules() envRules {
	return envRules{maxEntry: 32 * os.Getpagesize(), limitSource: "Linux (MAX_ARG_STRLEN)"}
}

// platformInit finds where run cgroups go, unless the config turned them
// off.
func platformInit(e *Engine, cfg Config) {
	if cfg.Cgroups != nil && !*cfg.Cgroups {
		return
	}
	parent, err := cgroupParent()
	if err != nil {
		e.logger.Info("native engine: not using cgroups; process groups alone contain tasks", "reason", err)
		return
	}
	e.cgroupParent = parent
	removeLeftoverCgroups(context.Background(), parent, e.logger)
	e.logger.Info("native engine: running each task in a cgroup", "parent", parent)
}

// newContainment creates the run's cgroup, or returns nil (logged) when
// cgroups are off or the cgroup cannot be made.
func newContainment(e *Engine, tc *task.Context) containment {
	if e.cgroupParent == "" {
		return nil
	}
	cg, err := newRunCgroup(e.cgroupParent, fmt.Sprintf("%s-%d", tc.TaskID, tc.RunID))
	if err != nil {
		e.logger.Warn("native engine: running task without a cgroup", "taskId", tc.TaskID, "error", err)
		return nil
	}
	return cg
}

// prepare makes c start in the cgroup (clone3 CLONE_INTO_CGROUP).
func (c *runCgroup) prepare(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.UseCgroupFD = true
	cmd.SysProcAttr.CgroupFD = int(c.fd.Fd())
}

// growPipe raises the pipe's capacity to 1 MiB (the default
// /proc/sys/fs/pipe-max-size) for throughput; failure is harmless.
func growPipe(w *os.File) {
	if rc, err := w.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) {
			_, _ = unix.FcntlInt(fd, unix.F_SETPIPE_SZ, 1<<20)
		})
	}
}

// wait blocks until the main process has exited and returns its status
// without reaping it (waitid WNOWAIT): the zombie keeps the process group
// ID reserved until release, so killing the group later can never hit an
// unrelated process group that reused the ID.
func (p *proc) wait() exitStatus {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, p.cmd.Process.Pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return exitStatus{err: err}
		}
		break
	}
	code, status := siginfoChild(&info)
	switch code {
	case cldExited:
		return exitStatus{code: int(status)}
	case cldKilled, cldDumped:
		return exitStatus{code: -1, signal: signalName(syscall.Signal(status))}
	}
	// Not possible with WEXITED alone.
	return exitStatus{err: fmt.Errorf("waitid: unexpected si_code %d", code)}
}

// si_code values of SIGCHLD (include/uapi/asm-generic/siginfo.h).
const (
	cldExited = 1
	cldKilled = 2
	cldDumped = 3
)

// siginfoChild reads si_code and si_status of a SIGCHLD siginfo. The
// kernel's layout (include/uapi/asm-generic/siginfo.h): three ints, then
// the union, aligned to the pointer size, whose _sigchld member starts with
// pid_t si_pid, uid_t si_uid, int si_status.
func siginfoChild(info *unix.Siginfo) (code int32, status int32) {
	base := unsafe.Pointer(info)
	code = info.Code
	union := uintptr(12)
	if unsafe.Sizeof(uintptr(0)) == 8 {
		union = 16
	}
	status = *(*int32)(unsafe.Add(base, union+8))
	return code, status
}

// release reaps the main process (after the group was killed).
func (p *proc) release() {
	_ = p.cmd.Wait()
	p.pgid = 0
}
