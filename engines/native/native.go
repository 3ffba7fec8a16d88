// Package native is the native engine: a task's commands run directly on
// the host, in the run's task directory, with generic-worker's semantics:
// as the worker's own user ("insecure" engine, the default), or, with
// config `multiuser`, as a fresh OS user created for the run and deleted
// after it (generic-worker's multiuser engine; see multiuser.go). Both
// modes run the resource monitor (resourcemonitor.go).
//
// # Payload
//
// The engine owns the payload's `command` field (generic-worker schemas
// insecure_posix / multiuser_posix and multiuser_windows):
//
//   - Linux, macOS: `[][]string`, one argv per command, run in order; the
//     first command exiting non-zero ends the task with that exit code. The
//     program is looked up in the task's PATH (not the worker's); a program
//     that is missing or not executable fails the task with exit code 127 or
//     126, as a shell would.
//   - Windows: `[]string`, one cmd.exe command line per command, each run as
//     a .bat file through a generated wrapper that carries the environment
//     and working directory from one command to the next, as generic-worker
//     does (see batWrapper).
//
// The working directory of the first command is the task directory.
//
// # Environment
//
// The task starts from the worker's own environment filtered by the config's
// `inheritEnv` list (never the worker's TASKCLUSTER_* variables), then every
// SetEnv, which overrides inherited variables of the same name. Names are
// any non-empty string without '=' or NUL (generic-worker accepts any
// payload `env` key); values pass unchanged, up to what the OS can hand to a
// new process (Linux: 32 pages, 128 KiB, per "NAME=value" entry; Windows:
// 32767 UTF-16 units per variable), beyond which SetEnv returns
// ErrInvalidEnvValue saying so.
//
// # Process tree
//
// POSIX: each command runs in its own process group. Background processes
// a command leaves may serve later commands (for example a display server),
// so they live until the task ends; then, and on Kill, Abort and Dispose,
// every group of the task receives SIGKILL. On Linux the group leader is not
// reaped until then (waitid WNOWAIT), so its process group ID cannot be
// reused by an unrelated process in the meantime. On Linux, when the worker
// may create cgroup v2 cgroups below its own (config `cgroups`, default on),
// the run's commands also start inside a cgroup of the run (clone3
// CLONE_INTO_CGROUP) and killing writes its cgroup.kill, which reaches
// processes that left the process group (setsid, daemons); the cgroup is
// removed when the run ends. Windows: each command runs
// in a job object created with JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE (the
// process is created suspended and only resumed once it is in the job).
//
// # Output
//
// stdout and stderr of every command share one pipe, so their order is kept,
// and go to the task log as raw bytes (no line splitting, no size limit,
// invalid UTF-8 and a last line without newline kept). A background process
// that keeps the pipe open cannot hang the task: when the last command ends
// the task's processes are killed and the pipe is drained; a process that
// escaped the process group (setsid) with no cgroup to catch it, and still
// holds the pipe, is cut off after drainTimeout.
//
// # Config
//
//	{"inheritEnv": ["PATH", "HOME", "LC_*"], "cgroups": true, "multiuser": true,
//	 "osGroups": ["docker"], "enableRunTaskAsCurrentUser": false,
//	 "enableResourceMonitor": true, "minAvailableMemoryBytes": 524288000,
//	 "maxMemoryUsagePercent": 90, "allowedHighMemoryDurationSecs": 5,
//	 "disableOOMProtection": false}
//
// `inheritEnv` entries are names or a prefix ending in '*'; the default is
// DefaultInheritEnvPOSIX or DefaultInheritEnvWindows. `cgroups` only
// matters on Linux.
package native

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/engines/internal/hostdir"
	"github.com/workergen/workergen/engines/sandboxstate"
	"github.com/workergen/workergen/internal/suggest"
	"github.com/workergen/workergen/task"
)

// drainTimeout bounds how long the engine keeps reading output after every
// process of the task's process groups was killed, for processes that left
// the group and still hold the output pipe.
const drainTimeout = 5 * time.Second

// Config is the engine's section of the worker config.
type Config struct {
	// InheritEnv lists the worker environment variables passed to tasks:
	// names, or prefixes ending in '*'. TASKCLUSTER_* names are refused.
	InheritEnv []string `json:"inheritEnv"`
	// Cgroups (Linux; default true) runs each task in a cgroup v2 cgroup
	// of its own below the worker's, when the worker may create one, so
	// that killing the task also reaches processes that left its process
	// groups. When cgroups are unavailable the engine logs why and uses
	// process groups alone.
	Cgroups *bool `json:"cgroups"`
	// Multiuser runs every task as a fresh OS user (see multiuser.go).
	Multiuser bool `json:"multiuser"`
	// OSGroups are the groups tasks may join through payload osGroups
	// (multiuser mode).
	OSGroups []string `json:"osGroups"`
	// EnableRunTaskAsCurrentUser allows features.runTaskAsCurrentUser
	// (multiuser mode; the task also needs the scope).
	EnableRunTaskAsCurrentUser bool `json:"enableRunTaskAsCurrentUser"`
	// The resource monitor's settings, upstream's worker config keys (see
	// resourcemonitor.go): nil means upstream's default.
	EnableResourceMonitor         *bool   `json:"enableResourceMonitor"`
	MinAvailableMemoryBytes       *uint64 `json:"minAvailableMemoryBytes"`
	MaxMemoryUsagePercent         *int    `json:"maxMemoryUsagePercent"`
	AllowedHighMemoryDurationSecs *int    `json:"allowedHighMemoryDurationSecs"`
	DisableOOMProtection          bool    `json:"disableOOMProtection"`
}

// Engine is the native engine.
type Engine struct {
	logger *slog.Logger
	// cgroupParent is where run cgroups are created (Linux), "" when
	// cgroups are not used.
	cgroupParent string
	inherit      inheritMatcher
	rules        envRules
	goos         string
	environ      func() []string

	// Multiuser mode (multiuser.go).
	multiuser        bool
	accounts         userAccounts
	osGroups         []string
	allowCurrentUser bool
	// monitor is the resource monitor's config (resourcemonitor.go).
	monitor monitorConfig
}

var _ engines.Engine = (*Engine)(nil)

// New returns a native engine for this OS. opts.Config is the engine's
// config section ({"inheritEnv": [...]}, may be empty); errors name the
// offending field.
func New(opts engines.Options) (engines.Engine, error) {
	var cfg Config
	if len(bytes.TrimSpace(opts.Config)) > 0 && string(bytes.TrimSpace(opts.Config)) != "null" {
		dec := json.NewDecoder(bytes.NewReader(opts.Config))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&cfg); err != nil {
			return nil, fmt.Errorf("decoding engine config: %w", suggest.UnknownField(err, &cfg))
		}
	}
	if cfg.InheritEnv == nil {
		cfg.InheritEnv = DefaultInheritEnvPOSIX
		if runtime.GOOS == "windows" {
			cfg.InheritEnv = DefaultInheritEnvWindows
		}
	}
	rules := platformEnvRules()
	m, err := newInheritMatcher(cfg.InheritEnv, rules.foldCase)
	if err != nil {
		return nil, err
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	e := &Engine{logger: logger, inherit: m, rules: rules, goos: runtime.GOOS, environ: os.Environ,
		multiuser: cfg.Multiuser, osGroups: cfg.OSGroups, allowCurrentUser: cfg.EnableRunTaskAsCurrentUser,
		monitor: newMonitorConfig(cfg)}
	if e.multiuser {
		if e.accounts, err = newUserAccounts(logger); err != nil {
			return nil, fmt.Errorf("engine config multiuser: %w", err)
		}
	}
	platformInit(e, cfg)
	return e, nil
}

// UsesCgroups reports whether tasks run in cgroups of their own (Linux,
// see Config.Cgroups).
func (e *Engine) UsesCgroups() bool { return e.cgroupParent != "" }

// Close does nothing: the engine holds no worker-wide resources.
func (e *Engine) Close() error { return nil }

// NewSandboxBuilder decodes the payload's `command`.
func (e *Engine) NewSandboxBuilder(ctx context.Context, tc *task.Context) (engines.SandboxBuilder, error) {
	cmds, err := parseCommands(e.goos, tc.Definition.Payload)
	if err != nil {
		return nil, err
	}
	if tc.TaskDir == "" {
		return nil, errors.New("native engine: task directory not set")
	}
	mp, err := parseMultiuserPayload(tc.Definition.Payload)
	if err != nil {
		return nil, err
	}
	if err := e.checkUserFeatures(ctx, tc, mp); err != nil {
		return nil, err
	}
	b := &builder{e: e, tc: tc, cmds: cmds, names: map[string]bool{}, monitor: e.monitor.forTask(mp)}
	if e.multiuser {
		if b.user, err = e.newRunUser(ctx, tc, mp); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// builder collects env vars.
type builder struct {
	e    *Engine
	tc   *task.Context
	cmds commands

	mu      sync.Mutex
	set     [][2]string
	names   map[string]bool
	started bool

	user    *runUser // multiuser mode, else nil
	monitor *monitorConfig
	report  func(engines.Handles) // ReportHandles
}

var _ engines.SandboxBuilder = (*builder)(nil)

// SetEnv sets a variable for every command of the task; see the package
// documentation for the name and value rules.
func (b *builder) SetEnv(name, value string) error {
	if err := validName(name); err != nil {
		return err
	}
	if err := b.e.rules.validValue(name, value); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.started {
		return fmt.Errorf("setting %s: sandbox already started", name)
	}
	k := b.e.rules.key(name)
	if b.names[k] {
		return fmt.Errorf("%s: %w", name, engines.ErrEnvConflict)
	}
	b.names[k] = true
	b.set = append(b.set, [2]string{name, value})
	return nil
}

// Discard deletes the run's task user (multiuser mode); nothing else was
// started.
func (b *builder) Discard() error { return b.user.end() }

// Start starts running the commands, in order, and returns the running
// sandbox. Problems starting a command later (E2BIG, fork failures) come
// back from Wait.
func (b *builder) Start(ctx context.Context) (engines.Sandbox, error) {
	if fi, err := os.Stat(b.tc.TaskDir); err != nil {
		return nil, fmt.Errorf("native engine: task directory: %w", err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("native engine: task directory %s is not a directory", b.tc.TaskDir)
	}
	b.mu.Lock()
	if b.started {
		b.mu.Unlock()
		return nil, errors.New("native engine: sandbox already started")
	}
	b.started = true
	var u *TaskUser
	if b.user != nil {
		u = b.user.user
	}
	env := mergeEnv(userEnv(b.e.environ(), u, b.e.goos), b.e.inherit, b.set, b.e.rules)
	report := b.report
	b.mu.Unlock()
	if u != nil && !u.CurrentUser {
		if err := handOver(b.tc.TaskDir, u); err != nil {
			return nil, fmt.Errorf("native engine: handing the task directory to %s: %w", u.Name, err)
		}
	}

	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("creating output pipe: %w", err)
	}
	growPipe(w)
	s := &sandbox{
		e:       b.e,
		tc:      b.tc,
		cmds:    b.cmds,
		env:     env,
		r:       r,
		w:       w,
		state:   sandboxstate.New(),
		readEnd: make(chan struct{}),
		outSync: newOutputSync(),
		start:   time.Now(),
		user:    b.user,
		report:  report,
	}
	if b.e.goos == "windows" {
		dir, err := os.MkdirTemp("", "workergen-native-")
		if err != nil {
			_ = r.Close()
			_ = w.Close()
			return nil, fmt.Errorf("creating directory for command scripts: %w", err)
		}
		s.batDir = dir
		if u != nil && !u.CurrentUser {
			// The task user runs the scripts and writes the saved
			// environment and directory there.
			if err := handOver(dir, u); err != nil {
				_ = r.Close()
				_ = w.Close()
				_ = os.RemoveAll(dir)
				return nil, fmt.Errorf("native engine: handing the command script directory to %s: %w", u.Name, err)
			}
		}
	}
	s.cont = newContainment(b.e, b.tc)
	s.mon = startMonitor(b.monitor, b.tc, s)
	s.reportStart()
	go s.read()
	go s.run()
	return s, nil
}

// sandbox is a running task.
type sandbox struct {
	e      *Engine
	tc     *task.Context
	cmds   commands
	env    []string
	batDir string      // Windows: generated .bat files and saved env/cwd
	cont   containment // Linux cgroup, or nil
	start  time.Time
	user   *runUser              // multiuser mode, else nil
	mon    *monitor              // resource monitor, or nil
	report func(engines.Handles) // from ReportHandles, or nil
	// reported is what report was last called with (by Start, then by
	// run's goroutine only).
	reported engines.Handles

	r, w    *os.File      // output pipe
	outSync *outputSync   // orders worker lines after the task's output
	readEnd chan struct{} // closed when read returns

	// state is the Wait/Kill/Abort state; its lock guards procs until
	// finish ends the state, after which only run's goroutine uses them.
	state *sandboxstate.State
	procs []*proc
	// shells are the interactive shells started (unix), guarded like
	// procs.
	shells []*ptyShell
}

var _ engines.Sandbox = (*sandbox)(nil)

// read copies the output pipe to the task log until EOF or until the
// deadline set by finish.
func (s *sandbox) read() {
	defer close(s.readEnd)
	bp := readBufs.Get().(*[]byte)
	defer readBufs.Put(bp)
	err := s.outSync.copyOut(logWriter{s.tc.Log}, s.r, *bp)
	if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) && !errors.Is(err, os.ErrClosed) {
		s.e.logger.Warn("reading task output", "taskId", s.tc.TaskID, "error", err)
	}
}

// readBufs are the output readers' 256 KiB buffers, kept from run to run
// (a fresh one per run was most of what a short task allocated).
var readBufs = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// logWriter hides task.Log's other methods from io.CopyBuffer (no
// ReaderFrom detour).
type logWriter struct{ l *task.Log }

func (w logWriter) Write(p []byte) (int, error) { return w.l.Write(p) }

// run runs the commands in order and then finishes the run.
func (s *sandbox) run() {
	res := &resultSet{
		s: s,
		dir: hostdir.Dir{
			Path:    s.tc.TaskDir,
			Skipped: func(rel string, why error) { s.tc.Logf("skipping %s: %v", rel, why) },
			Roots:   &hostdir.Roots{},
		},
	}
	var runErr error
	env, dir := s.env, s.tc.TaskDir
	n := s.cmds.len()
	for i := 0; i < n; i++ {
		var (
			c        *exec.Cmd
			code     int
			startErr error
		)
		if s.cmds.lines != nil {
			c, startErr = s.windowsCommand(i, env, dir)
		} else {
			c, code, startErr = s.posixCommand(i, env)
		}
		if startErr != nil {
			if code != 0 {
				s.tc.Logf("command %d/%d: %v", i+1, n, startErr)
				res.exitCode = code
			} else {
				runErr = startErr
			}
			break
		}
		s.tc.Logf("running command %d/%d: %s", i+1, n, s.cmds.describe(i))
		p, stopped, err := s.startCommand(c)
		if stopped {
			break
		}
		if err != nil {
			if errors.Is(err, syscall.E2BIG) {
				runErr = task.MalformedPayloadf("payload.env, payload.command[%d]: the environment and arguments are too large for the operating system to start the command: %v", i, err)
			} else if code, ok := startFailureCode(err); ok {
				s.tc.Logf("command %d/%d: %v", i+1, n, err)
				res.exitCode = code
			} else {
				runErr = fmt.Errorf("starting command %d: %w", i, err)
			}
			break
		}

		st := p.wait()
		if st.err != nil {
			runErr = fmt.Errorf("waiting for command %d: %w", i, st.err)
			break
		}
		res.exitCode = st.code
		s.outSync.wait(s.w) // the command's last output comes before our lines
		if st.signal != "" {
			res.exitCode = -1
			if s.state.Stopped() == sandboxstate.None {
				s.tc.Logf("command %d/%d was terminated by signal %s", i+1, n, st.signal)
			}
			break
		}
		if st.code != 0 {
			if n > 1 {
				s.tc.Logf("command %d/%d exited with code %d", i+1, n, st.code)
			}
			break
		}
		if s.cmds.lines != nil && i < n-1 {
			env, dir = s.carryOver(i, env, dir)
		}
	}
	end := time.Now()
	stop := s.finish()
	res.duration = end.Sub(s.start)
	if stop != sandboxstate.None {
		res.killed = stop == sandboxstate.Killed
		res.exitCode = -1
	}
	if runErr != nil {
		s.state.Finish(nil, runErr)
		return
	}
	s.state.Finish(res, nil)
}

// startCommand starts c unless Kill or Abort came first (stopped), and
// records its process for them.
func (s *sandbox) startCommand(c *exec.Cmd) (p *proc, stopped bool, err error) {
	var h engines.Handles
	defer func() { s.reportHandles(h) }()
	s.state.Locked(func(stop sandboxstate.Stop) {
		if stop != sandboxstate.None {
			stopped = true
			return
		}
		if s.cont != nil {
			s.cont.prepare(c)
		}
		if p, err = startProc(c); err == nil {
			s.procs = append(s.procs, p)
			h = s.handles()
		}
	})
	return p, stopped, err
}

// posixCommand builds command i for POSIX.
// runAs makes c run as the run's task user (multiuser mode, unless the
// task runs as the current user).
func (s *sandbox) runAs(c *exec.Cmd) {
	if s.user != nil && !s.user.user.CurrentUser {
		runAsUser(c, s.user.user)
	}
}

func (s *sandbox) posixCommand(i int, env []string) (*exec.Cmd, int, error) {
	argv := s.cmds.argv[i]
	pathEnv, _ := lookupEnv(env, "PATH", s.e.rules)
	path, code, err := lookPath(argv[0], pathEnv, s.tc.TaskDir)
	if err != nil {
		return nil, code, err
	}
	c := &exec.Cmd{Path: path, Args: argv, Env: env, Dir: s.tc.TaskDir, Stdout: s.w, Stderr: s.w}
	s.runAs(c)
	return c, 0, nil
}

// windowsCommand writes the .bat files of command i and builds the cmd.exe
// process that runs them.
func (s *sandbox) windowsCommand(i int, env []string, dir string) (*exec.Cmd, error) {
	f := batPaths(s.batDir, i, s.cmds.len())
	if err := os.WriteFile(f.Script, batScript(s.cmds.lines[i]), 0o644); err != nil {
		return nil, fmt.Errorf("writing command script: %w", err)
	}
	if err := os.WriteFile(f.Wrapper, batWrapper(f, s.tc.TaskID, i), 0o644); err != nil {
		return nil, fmt.Errorf("writing command wrapper: %w", err)
	}
	comspec, ok := lookupEnv(env, "ComSpec", s.e.rules)
	if !ok || comspec == "" {
		comspec = `C:\Windows\System32\cmd.exe`
		if root, ok := lookupEnv(env, "SystemRoot", s.e.rules); ok && root != "" {
			comspec = root + `\System32\cmd.exe`
		}
	}
	c := &exec.Cmd{Path: comspec, Args: []string{comspec}, Env: env, Dir: dir, Stdout: s.w, Stderr: s.w}
	setCmdLine(c, cmdLine(comspec, f.Wrapper))
	s.runAs(c)
	return c, nil
}

// carryOver reads the environment and working directory command i saved.
// On failure it logs and keeps the previous ones.
func (s *sandbox) carryOver(i int, env []string, dir string) ([]string, string) {
	f := batPaths(s.batDir, i, s.cmds.len())
	if data, err := os.ReadFile(f.EnvOut); err != nil {
		s.tc.Logf("command %d: could not read the environment it left, keeping the previous one: %v", i+1, err)
	} else if saved, err := parseSavedEnv(data); err != nil {
		s.tc.Logf("command %d: could not decode the environment it left, keeping the previous one: %v", i+1, err)
	} else {
		env = saved
	}
	if data, err := os.ReadFile(f.DirOut); err != nil {
		s.tc.Logf("command %d: could not read the directory it left, keeping the previous one: %v", i+1, err)
	} else if d, err := parseSavedDir(data); err != nil {
		s.tc.Logf("command %d: could not decode the directory it left, keeping the previous one: %v", i+1, err)
	} else {
		dir = d
	}
	return env, dir
}

// finish ends the state (Kill and Abort are no-ops from now on), kills
// what is left of the task, stops reading its output and releases the
// processes. It returns the stop recorded before the end. Called once, by
// run.
func (s *sandbox) finish() sandboxstate.Stop {
	stop := s.state.End()
	s.mon.stop()
	s.closeShells()
	procs := s.procs
	for _, p := range procs {
		if err := p.kill(); err != nil {
			s.e.logger.Warn("killing task processes", "taskId", s.tc.TaskID, "error", err)
		}
	}
	if s.cont != nil {
		if err := s.cont.kill(); err != nil {
			s.e.logger.Warn("killing task cgroup", "taskId", s.tc.TaskID, "error", err)
		}
	}
	_ = s.w.Close()
	t := time.NewTimer(drainTimeout)
	select {
	case <-s.readEnd:
	case <-t.C:
		s.tc.Logf("a process outside the task's process groups still holds the task's output open; no longer reading it")
		if err := s.r.SetReadDeadline(time.Now()); err != nil {
			_ = s.r.Close() // pipes without deadlines (Windows)
		}
		t.Reset(drainTimeout)
		select {
		case <-s.readEnd:
		case <-t.C:
			// A read that neither deadline nor close interrupts: leave
			// the reader behind rather than hang the run.
			s.e.logger.Error("task output reader did not stop", "taskId", s.tc.TaskID)
		}
	}
	t.Stop()
	_ = s.r.Close()
	for _, p := range procs {
		p.release()
	}
	if s.cont != nil {
		// Removed before the result, not after: its rmdir succeeds only
		// once every process of the run is gone, which the worker's reuse
		// of the run's directory relies on (worker/rundir.go).
		if err := s.cont.remove(); err != nil {
			s.e.logger.Warn("removing task cgroup", "taskId", s.tc.TaskID, "error", err)
		}
	}
	if s.batDir != "" {
		if err := os.RemoveAll(s.batDir); err != nil {
			s.e.logger.Warn("removing command scripts", "dir", s.batDir, "error", err)
		}
	}
	if err := s.user.end(); err != nil {
		s.tc.Logf("could not remove task user %s: %v", s.user.user.Name, err)
	}
	s.mon.summary()
	return stop
}

// Wait waits for the task to end.
func (s *sandbox) Wait(ctx context.Context) (engines.ResultSet, error) {
	return s.state.Wait(ctx)
}

// Kill kills every process of the task; Wait then reports Killed.
func (s *sandbox) Kill() error { return s.state.Kill(s.kill) }

// Abort kills every process of the task; Wait then returns ErrAborted.
func (s *sandbox) Abort() error { return s.state.Abort(s.kill) }

// kill kills every process of the task. Called with the state locked, only
// before the end. The stop is recorded even when killing fails, so that no
// further command starts.
func (s *sandbox) kill() (bool, error) {
	s.closeShells()
	var errs []error
	for _, p := range s.procs {
		if err := p.kill(); err != nil {
			errs = append(errs, err)
		}
	}
	if s.cont != nil {
		if err := s.cont.kill(); err != nil {
			errs = append(errs, err)
		}
	}
	return true, errors.Join(errs...)
}

// containment holds a run's processes beyond what process groups or job
// objects do (Linux cgroups).
type containment interface {
	// prepare makes c start inside the container.
	prepare(c *exec.Cmd)
	// kill kills every process inside.
	kill() error
	// remove deletes the container once its processes are gone.
	remove() error
}

// exitStatus is how a command's main process ended.
type exitStatus struct {
	code   int    // exit code, when it exited
	signal string // signal name, when a signal ended it (POSIX)
	err    error  // waiting failed
}

// resultSet is a finished task.
type resultSet struct {
	s        *sandbox
	dir      hostdir.Dir
	exitCode int
	killed   bool
	duration time.Duration
}

var _ engines.ResultSet = (*resultSet)(nil)

func (r *resultSet) Success() bool           { return r.exitCode == 0 && !r.killed }
func (r *resultSet) ExitCode() int           { return r.exitCode }
func (r *resultSet) Killed() bool            { return r.killed }
func (r *resultSet) OOM() bool               { return false }
func (r *resultSet) Duration() time.Duration { return r.duration }

// ExtractFile opens a file the task left; see engines/internal/hostdir for
// the path rules.
func (r *resultSet) ExtractFile(ctx context.Context, path string) (engines.File, error) {
	return r.dir.ExtractFile(ctx, path)
}

// ExtractFolder walks a folder the task left; see engines/internal/hostdir.
func (r *resultSet) ExtractFolder(ctx context.Context, path string, fn func(string, engines.File) error) error {
	return r.dir.ExtractFolder(ctx, path, fn)
}

// Dispose leaves the task directory to the worker, which owns it, and
// closes the handles extraction kept open. The task's processes were
// already killed when it ended.
func (r *resultSet) Dispose() error {
	return r.dir.Roots.Close()
}

// startFailureCode maps an exec failure the task is at fault for to the
// exit code a shell reports: 127 when the program (or its #! interpreter)
// does not exist, 126 when it cannot be executed.
func startFailureCode(err error) (int, bool) {
	switch {
	case errors.Is(err, syscall.ENOENT):
		return exitNotFound, true
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.ENOEXEC), errors.Is(err, syscall.EISDIR):
		return exitNotExecutable, true
	}
	return 0, false
}
