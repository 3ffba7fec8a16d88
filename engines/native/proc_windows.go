package native

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"unsafe"

	"golang.org/x/sys/windows"

	"github.com/workergen/workergen/task"
)

// platformEnvRules: Windows limits one environment variable to 32767
// UTF-16 code units (name, '=' and value); names are case-insensitive.
func platformEnvRules() envRules {
	return envRules{foldCase: true, maxEntry: 32767, utf16: true, limitSource: "Windows"}
}

func growPipe(*os.File) {}

func platformInit(*Engine, Config) {}

// newContainment: the job objects already hold every process.
func newContainment(*Engine, *task.Context) containment { return nil }

// setCmdLine sets the raw command line (cmd.exe parses its own).
func setCmdLine(c *exec.Cmd, line string) {
	if c.SysProcAttr == nil {
		c.SysProcAttr = &syscall.SysProcAttr{}
	}
	c.SysProcAttr.CmdLine = line
}

// proc is one command's main process and the job object holding its tree.
type proc struct {
	cmd *exec.Cmd
	job windows.Handle
}

// startProc creates c suspended, puts it in a new job object that kills
// every process in it when the job's last handle closes, and resumes it, so
// no child can be created outside the job.
func startProc(c *exec.Cmd) (*proc, error) {
	if c.SysProcAttr == nil {
		c.SysProcAttr = &syscall.SysProcAttr{}
	}
	c.SysProcAttr.CreationFlags |= windows.CREATE_SUSPENDED | windows.CREATE_NEW_PROCESS_GROUP
	job, err := windows.CreateJobObject(nil, nil)
	if err != nil {
		return nil, fmt.Errorf("creating job object: %w", err)
	}
	info := windows.JOBOBJECT_EXTENDED_LIMIT_INFORMATION{}
	info.BasicLimitInformation.LimitFlags = windows.JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE
	if _, err := windows.SetInformationJobObject(job, windows.JobObjectExtendedLimitInformation,
		uintptr(unsafe.Pointer(&info)), uint32(unsafe.Sizeof(info))); err != nil {
		_ = windows.CloseHandle(job)
		return nil, fmt.Errorf("configuring job object: %w", err)
	}
	if err := c.Start(); err != nil {
		_ = windows.CloseHandle(job)
		return nil, err
	}
	p := &proc{cmd: c, job: job}
	pid := uint32(c.Process.Pid)
	ph, err := windows.OpenProcess(windows.PROCESS_SET_QUOTA|windows.PROCESS_TERMINATE, false, pid)
	if err == nil {
		err = windows.AssignProcessToJobObject(job, ph)
		_ = windows.CloseHandle(ph)
	}
	if err == nil {
		err = resumeProcess(pid)
	}
	if err != nil {
		_ = c.Process.Kill()
		_ = c.Wait()
		_ = windows.CloseHandle(job)
		return nil, fmt.Errorf("placing command in a job object: %w", err)
	}
	return p, nil
}

// resumeProcess resumes every thread of the (suspended) process pid.
func resumeProcess(pid uint32) error {
	snap, err := windows.CreateToolhelp32Snapshot(windows.TH32CS_SNAPTHREAD, 0)
	if err != nil {
		return fmt.Errorf("listing threads: %w", err)
	}
	defer windows.CloseHandle(snap)
	te := windows.ThreadEntry32{Size: uint32(unsafe.Sizeof(windows.ThreadEntry32{}))}
	resumed := 0
	for err = windows.Thread32First(snap, &te); err == nil; err = windows.Thread32Next(snap, &te) {
		if te.OwnerProcessID != pid {
			continue
		}
		th, err := windows.OpenThread(windows.THREAD_SUSPEND_RESUME, false, te.ThreadID)
		if err != nil {
			return fmt.Errorf("opening thread %d: %w", te.ThreadID, err)
		}
		_, err = windows.ResumeThread(th)
		_ = windows.CloseHandle(th)
		if err != nil {
			return fmt.Errorf("resuming thread %d: %w", te.ThreadID, err)
		}
		resumed++
	}
	if !errors.Is(err, windows.ERROR_NO_MORE_FILES) {
		return fmt.Errorf("listing threads: %w", err)
	}
	if resumed == 0 {
		return errors.New("no thread to resume")
	}
	return nil
}

// wait waits for the main process.
func (p *proc) wait() exitStatus {
	err := p.cmd.Wait()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return exitStatus{err: err}
	}
	return exitStatus{code: p.cmd.ProcessState.ExitCode()}
}

// kill terminates every process in the job.
func (p *proc) kill() error {
	if p.job == 0 {
		return nil
	}
	if err := windows.TerminateJobObject(p.job, 1); err != nil {
		return fmt.Errorf("terminating job object: %w", err)
	}
	return nil
}

// release closes the job (killing anything still in it).
func (p *proc) release() {
	if p.job != 0 {
		_ = windows.CloseHandle(p.job)
		p.job = 0
	}
}

func signalName(sig syscall.Signal) string { return sig.String() }
