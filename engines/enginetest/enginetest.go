// Package enginetest is the conformance suite of the engine contract
// (package engines). Every engine runs it from its own tests:
//
//	func TestConformance(t *testing.T) {
//		enginetest.Run(t, enginetest.Harness{
//			New:     func(t *testing.T) engines.Engine { ... },
//			Payload: func(t *testing.T, s enginetest.Scenario) json.RawMessage { ... },
//		})
//	}
//
// Payload shapes differ per engine, so the suite describes what a task does
// as a Scenario and the harness turns it into that engine's payload.
// Engines whose tasks run a POSIX shell can use ShellScript. Abilities not
// every engine has (host task directory, process inspection, background
// processes) are switched on in the Harness; the rest is required. The
// engine's optional abilities (engines.Ability) are given in the Harness
// and checked against its types (CheckAbilities), and against its CUE
// metadata when the Harness names its Kind.
//
// Engines that start goroutines should also check for leaks in TestMain
// with go.uber.org/goleak.
package enginetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/task"
)

// Step is one thing a task does. Exactly one group of fields is set.
type Step struct {
	// Stdout and Stderr are written, byte for byte, Repeat times (Repeat 0
	// means once).
	Stdout, Stderr string
	Repeat         int

	// PrintEnv writes the value of this environment variable followed by
	// "\n" to stdout (nothing but the "\n" when it is unset). Names used by
	// the suite are shell identifiers.
	PrintEnv string

	// File is created (parents included, slash-separated, relative to the
	// working directory) with Content.
	File, Content string

	// Symlink is created (relative to the working directory) pointing at
	// Target, which is used as given.
	Symlink, Target string

	// Background starts a grandchild that inherits stdout (keeping the
	// output open) and sleeps for an hour; when PIDFile is set, its process
	// ID is written there (relative to the working directory) in decimal.
	Background bool
	PIDFile    string

	// SleepUntilKilled blocks (for an hour) until the task is killed. When
	// PIDFile is set, the sleeping process is a grandchild whose process ID
	// is written there. Announce is then written to stdout (after the PID
	// file exists), right before blocking.
	SleepUntilKilled bool
	Announce         string
}

// Scenario is a task: its steps in order, then exit with ExitCode.
type Scenario struct {
	Steps    []Step
	ExitCode int
}

// Harness adapts the suite to one engine.
type Harness struct {
	// New returns a fresh engine; the suite closes it.
	New func(t *testing.T) engines.Engine
	// Payload returns the task payload that runs s on this engine.
	Payload func(t *testing.T, s Scenario) json.RawMessage

	// HostFiles: the engine reads results from task.Context.TaskDir on the
	// host; path containment (symlinks, "..", absolute paths) is tested.
	HostFiles bool
	// Background: Step.Background and PIDFile are supported.
	Background bool
	// ProcessGone reports whether the process with the given ID (read from
	// a PIDFile) no longer runs. Nil skips process tree checks.
	ProcessGone func(pid int) bool
	// MaxEnvEntry is the largest len(name)+len(value)+2 SetEnv accepts
	// (the OS limit for one variable); 0 means unlimited. The suite passes
	// a value of 1 MiB + 1 bytes, or the largest allowed if smaller, and
	// checks that one byte more is refused with ErrInvalidEnvValue.
	MaxEnvEntry int
	// Timeout bounds every wait; 0 means 2 minutes.
	Timeout time.Duration
	// UnorderedStreams: stdout and stderr reach the log through separate
	// channels whose relative order the engine cannot keep (a Docker
	// daemon copies a container's two pipes independently); the suite
	// then checks that both lines arrive, not their order.
	UnorderedStreams bool

	// Abilities are the optional abilities the engine declares (its CUE
	// `abilities`); the suite checks they are exactly those its Engine,
	// SandboxBuilder and Sandbox implement (CheckAbilities).
	Abilities []engines.Ability
	// Kind, when set, is the engine's key under `engines:` in its CUE (e.g.
	// "native"): the suite then also checks Abilities against the
	// schemas, read from the module root above the test's directory.
	Kind string
}

// Run runs the conformance suite.
func Run(t *testing.T, h Harness) {
	if h.Timeout == 0 {
		h.Timeout = 2 * time.Minute
	}
	s := &suite{h: h}
	t.Run("Logging", s.logging)
	t.Run("ExitCodes", s.exitCodes)
	t.Run("Env", s.env)
	t.Run("EnvInvalid", s.envInvalid)
	t.Run("EnvHugeValue", s.envHuge)
	t.Run("Kill", s.kill)
	t.Run("KillRightAfterStart", s.killRightAfterStart)
	t.Run("Abort", s.abort)
	t.Run("ConcurrentRuns", s.concurrent)
	t.Run("Discard", s.discard)
	t.Run("ExtractFile", s.extractFile)
	t.Run("ExtractFolder", s.extractFolder)
	t.Run("ArtifactsAfterKill", s.artifactsAfterKill)
	t.Run("LongLine", s.longLine)
	t.Run("InvalidUTF8", s.invalidUTF8)
	t.Run("NoTrailingNewline", s.noTrailingNewline)
	t.Run("Abilities", s.abilities)
	if h.Background {
		t.Run("BackgroundHoldsStdout", s.background)
	}
	if h.HostFiles {
		t.Run("PathContainment", s.containment)
	}
}

type suite struct{ h Harness }

// run is one task run under test.
type run struct {
	t   *testing.T
	e   engines.Engine
	tc  *task.Context
	log *LogBuffer
	b   engines.SandboxBuilder
	sb  engines.Sandbox
	rs  engines.ResultSet
}

func (s *suite) newRun(t *testing.T, sc Scenario) *run {
	t.Helper()
	e := s.h.New(t)
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Errorf("Engine.Close: %v", err)
		}
	})
	lb := NewLogBuffer()
	tc := &task.Context{
		TaskID:  "enginetestTaskId00000A",
		RunID:   0,
		TaskDir: realDir(t, t.TempDir()),
		Log:     task.NewLog(lb),
		Definition: task.Definition{
			TaskGroupID: "enginetestTaskId00000A",
			Payload:     s.h.Payload(t, sc),
		},
		Started: time.Now(),
	}
	b, err := e.NewSandboxBuilder(s.ctx(t), tc)
	if err != nil {
		t.Fatalf("NewSandboxBuilder: %v", err)
	}
	return &run{t: t, e: e, tc: tc, log: lb, b: b}
}

func realDir(t *testing.T, d string) string {
	r, err := filepath.EvalSymlinks(d)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (s *suite) ctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), s.h.Timeout)
	t.Cleanup(cancel)
	return ctx
}

func (r *run) start(ctx context.Context) {
	r.t.Helper()
	sb, err := r.b.Start(ctx)
	if err != nil {
		r.t.Fatalf("Start: %v", err)
	}
	r.sb = sb
	r.t.Cleanup(func() { _ = sb.Abort() })
}

func (r *run) wait(ctx context.Context) engines.ResultSet {
	r.t.Helper()
	rs, err := r.sb.Wait(ctx)
	if err != nil {
		r.t.Fatalf("Wait: %v\nlog:\n%s", err, clip(r.log.Bytes()))
	}
	r.rs = rs
	r.t.Cleanup(func() {
		if err := rs.Dispose(); err != nil {
			r.t.Errorf("Dispose: %v", err)
		}
	})
	return rs
}

// runToEnd starts the scenario with env and waits for its result.
func (s *suite) runToEnd(t *testing.T, sc Scenario, env ...string) *run {
	t.Helper()
	r := s.newRun(t, sc)
	for i := 0; i+1 < len(env); i += 2 {
		if err := r.b.SetEnv(env[i], env[i+1]); err != nil {
			t.Fatalf("SetEnv(%q): %v", env[i], err)
		}
	}
	ctx := s.ctx(t)
	r.start(ctx)
	r.wait(ctx)
	return r
}

func clip(b []byte) string {
	if len(b) > 4000 {
		return string(b[:2000]) + "\n[...]\n" + string(b[len(b)-2000:])
	}
	return string(b)
}

func (s *suite) logging(t *testing.T) {
	r := s.runToEnd(t, Scenario{Steps: []Step{{Stdout: "hello from stdout\n"}, {Stderr: "hello from stderr\n"}}})
	got := r.log.Bytes()
	i, j := bytes.Index(got, []byte("hello from stdout\n")), bytes.Index(got, []byte("hello from stderr\n"))
	if i < 0 || j < 0 {
		t.Fatalf("log lacks stdout or stderr line:\n%s", got)
	}
	if j < i && !s.h.UnorderedStreams {
		t.Errorf("stderr line written before the stdout line that came first:\n%s", got)
	}
	if !r.rs.Success() || r.rs.ExitCode() != 0 || r.rs.Killed() {
		t.Errorf("result: success=%v exitCode=%d killed=%v, want true 0 false", r.rs.Success(), r.rs.ExitCode(), r.rs.Killed())
	}
	if r.rs.Duration() < 0 {
		t.Errorf("negative duration %v", r.rs.Duration())
	}
	// Wait again: same result.
	rs2, err := r.sb.Wait(s.ctx(t))
	if err != nil || rs2 != r.rs {
		t.Errorf("second Wait = %v, %v; want the same result", rs2, err)
	}
	// Kill and Abort after the end are no-ops that keep the result.
	if err := r.sb.Kill(); err != nil {
		t.Errorf("Kill after end: %v", err)
	}
	if err := r.sb.Abort(); err != nil {
		t.Errorf("Abort after end: %v", err)
	}
	rs3, err := r.sb.Wait(s.ctx(t))
	if err != nil || rs3.Killed() || !rs3.Success() {
		t.Errorf("Wait after Kill/Abort of an ended task = %v, %v; want the successful result", rs3, err)
	}
}

func (s *suite) exitCodes(t *testing.T) {
	for _, code := range []int{0, 1, 42} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			r := s.runToEnd(t, Scenario{Steps: []Step{{Stdout: "exiting\n"}}, ExitCode: code})
			if r.rs.ExitCode() != code {
				t.Errorf("ExitCode = %d, want %d", r.rs.ExitCode(), code)
			}
			if r.rs.Success() != (code == 0) {
				t.Errorf("Success = %v for exit code %d", r.rs.Success(), code)
			}
			if r.rs.Killed() {
				t.Errorf("Killed = true")
			}
		})
	}
}

func (s *suite) env(t *testing.T) {
	values := map[string]string{
		"WG_PLAIN":   "plain value",
		"WG_SPECIAL": "quotes ' \" ` $HOME %PATH% \\ ; & | < > * ? ~ é ✓ tab\tend",
		"WG_NEWLINE": "line one\nline two",
		"WG_EMPTY":   "",
		// Not UTF-8: engines whose transport needs UTF-8 (JSON APIs) may
		// refuse it with ErrInvalidEnvValue; otherwise it passes exactly.
		"WG_BYTES": "raw \xff\xfe bytes",
	}
	var steps []Step
	r := s.newRun(t, Scenario{})
	for _, name := range slices.Sorted(mapsKeys(values)) {
		err := r.b.SetEnv(name, values[name])
		if name == "WG_BYTES" && errors.Is(err, engines.ErrInvalidEnvValue) {
			t.Logf("engine refuses a value that is not UTF-8: %v", err)
			delete(values, name)
			continue
		}
		if err != nil {
			t.Fatalf("SetEnv(%s): %v", name, err)
		}
		steps = append(steps, Step{PrintEnv: name})
	}
	if err := r.b.Discard(); err != nil {
		t.Errorf("Discard: %v", err)
	}
	// The payload is only read at NewSandboxBuilder, so build the run
	// again now that the steps are known.
	r = s.newRun(t, Scenario{Steps: steps})
	for _, name := range slices.Sorted(mapsKeys(values)) {
		if err := r.b.SetEnv(name, values[name]); err != nil {
			t.Fatalf("SetEnv(%s): %v", name, err)
		}
	}
	ctx := s.ctx(t)
	r.start(ctx)
	r.wait(ctx)
	got := r.log.Bytes()
	for _, name := range slices.Sorted(mapsKeys(values)) {
		if values[name] == "" {
			continue
		}
		if !bytes.Contains(got, []byte(values[name]+"\n")) {
			t.Errorf("log lacks the value of %s (%q):\n%q", name, values[name], got)
		}
	}
	if !r.rs.Success() {
		t.Errorf("task failed, exit code %d", r.rs.ExitCode())
	}
}

func mapsKeys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func (s *suite) envInvalid(t *testing.T) {
	r := s.newRun(t, Scenario{Steps: []Step{{PrintEnv: "WG_OK"}}})
	for _, name := range []string{"", "A=B", "=A", "A\x00B"} {
		if err := r.b.SetEnv(name, "v"); !errors.Is(err, engines.ErrInvalidEnvName) {
			t.Errorf("SetEnv(%q) = %v, want ErrInvalidEnvName", name, err)
		}
	}
	if err := r.b.SetEnv("WG_NUL", "a\x00b"); !errors.Is(err, engines.ErrInvalidEnvValue) {
		t.Errorf("SetEnv with NUL in value = %v, want ErrInvalidEnvValue", err)
	}
	if err := r.b.SetEnv("WG_OK", "first"); err != nil {
		t.Fatalf("SetEnv(WG_OK): %v", err)
	}
	if err := r.b.SetEnv("WG_OK", "second"); !errors.Is(err, engines.ErrEnvConflict) {
		t.Errorf("second SetEnv(WG_OK) = %v, want ErrEnvConflict", err)
	}
	// Concurrent SetEnv of distinct names is safe.
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Go(func() { errs <- r.b.SetEnv(fmt.Sprintf("WG_CONCURRENT_%d", i), "x") })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent SetEnv: %v", err)
		}
	}
	ctx := s.ctx(t)
	r.start(ctx)
	r.wait(ctx)
	if !bytes.Contains(r.log.Bytes(), []byte("first\n")) {
		t.Errorf("the first value of WG_OK did not reach the task:\n%s", r.log.Bytes())
	}
}

func (s *suite) envHuge(t *testing.T) {
	const name = "WG_HUGE"
	size := 1<<20 + 1
	if s.h.MaxEnvEntry > 0 && s.h.MaxEnvEntry-len(name)-2 < size {
		size = s.h.MaxEnvEntry - len(name) - 2
	}
	value := hugeValue(size)
	r := s.newRun(t, Scenario{Steps: []Step{{PrintEnv: name}}})
	if s.h.MaxEnvEntry > 0 {
		if err := r.b.SetEnv("WG_TOO_BIG", hugeValue(s.h.MaxEnvEntry)); !errors.Is(err, engines.ErrInvalidEnvValue) {
			t.Errorf("SetEnv of a value beyond the OS limit = %v, want ErrInvalidEnvValue", err)
		}
	}
	if err := r.b.SetEnv(name, value); err != nil {
		t.Fatalf("SetEnv(%d bytes): %v", size, err)
	}
	ctx := s.ctx(t)
	r.start(ctx)
	r.wait(ctx)
	if !bytes.Contains(r.log.Bytes(), []byte(value+"\n")) {
		t.Errorf("the %d-byte value did not reach the task intact (log is %d bytes)", size, len(r.log.Bytes()))
	}
}

// hugeValue is n bytes of varied printable content.
func hugeValue(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789-_.:/ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[(i*7+i/97)%len(alphabet)]
	}
	return string(b)
}

// sleeper is a scenario that writes files, says ready and sleeps until
// killed; with process checks, the sleeper is a grandchild with a PID file.
func (s *suite) sleeper() Scenario {
	sleep := Step{SleepUntilKilled: true, Announce: "ready to be killed\n"}
	if s.h.ProcessGone != nil && s.h.Background {
		sleep.PIDFile = "sleeper.pid"
	}
	return Scenario{Steps: []Step{
		{File: "out/result.txt", Content: "written before the kill\n"},
		sleep,
	}}
}

func (s *suite) kill(t *testing.T) {
	r := s.newRun(t, s.sleeper())
	ctx := s.ctx(t)
	r.start(ctx)
	if err := r.log.WaitFor(ctx, []byte("ready to be killed\n")); err != nil {
		t.Fatalf("task did not get ready: %v\nlog:\n%s", err, r.log.Bytes())
	}
	pid := s.readPID(t, r, "sleeper.pid")
	if err := r.sb.Kill(); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	if err := r.sb.Kill(); err != nil {
		t.Errorf("second Kill: %v", err)
	}
	rs := r.wait(ctx)
	if !rs.Killed() || rs.Success() || rs.ExitCode() != -1 {
		t.Errorf("after Kill: killed=%v success=%v exitCode=%d, want true false -1", rs.Killed(), rs.Success(), rs.ExitCode())
	}
	s.checkGone(t, ctx, pid)
}

func (s *suite) abort(t *testing.T) {
	r := s.newRun(t, s.sleeper())
	ctx := s.ctx(t)
	r.start(ctx)
	if err := r.log.WaitFor(ctx, []byte("ready to be killed\n")); err != nil {
		t.Fatalf("task did not get ready: %v\nlog:\n%s", err, r.log.Bytes())
	}
	pid := s.readPID(t, r, "sleeper.pid")
	if err := r.sb.Abort(); err != nil {
		t.Fatalf("Abort: %v", err)
	}
	if err := r.sb.Abort(); err != nil {
		t.Errorf("second Abort: %v", err)
	}
	if err := r.sb.Kill(); err != nil {
		t.Errorf("Kill after Abort: %v", err)
	}
	for range 2 {
		if rs, err := r.sb.Wait(ctx); !errors.Is(err, engines.ErrAborted) {
			t.Errorf("Wait after Abort = %v, %v; want ErrAborted", rs, err)
		}
	}
	s.checkGone(t, ctx, pid)
}

func (s *suite) killRightAfterStart(t *testing.T) {
	r := s.newRun(t, s.sleeper())
	ctx := s.ctx(t)
	r.start(ctx)
	if err := r.sb.Kill(); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	rs := r.wait(ctx)
	if !rs.Killed() || rs.Success() || rs.ExitCode() != -1 {
		t.Errorf("after Kill: killed=%v success=%v exitCode=%d, want true false -1", rs.Killed(), rs.Success(), rs.ExitCode())
	}
}

// concurrent runs several tasks of one engine at once (a worker with
// capacity > 1); each log holds its own output only.
func (s *suite) concurrent(t *testing.T) {
	e := s.h.New(t)
	t.Cleanup(func() { _ = e.Close() })
	const n = 4
	ctx := s.ctx(t)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			lb := NewLogBuffer()
			tc := &task.Context{
				TaskID:     fmt.Sprintf("enginetestConcurrent%02d", i),
				TaskDir:    realDir(t, t.TempDir()),
				Log:        task.NewLog(lb),
				Definition: task.Definition{Payload: s.h.Payload(t, Scenario{Steps: []Step{{PrintEnv: "WG_RUN"}, {File: "run.txt", Content: strconv.Itoa(i)}}})},
			}
			b, err := e.NewSandboxBuilder(ctx, tc)
			if err != nil {
				t.Errorf("run %d: NewSandboxBuilder: %v", i, err)
				return
			}
			if err := b.SetEnv("WG_RUN", fmt.Sprintf("run-%d-value", i)); err != nil {
				t.Errorf("run %d: SetEnv: %v", i, err)
				return
			}
			sb, err := b.Start(ctx)
			if err != nil {
				t.Errorf("run %d: Start: %v", i, err)
				return
			}
			rs, err := sb.Wait(ctx)
			if err != nil {
				t.Errorf("run %d: Wait: %v", i, err)
				return
			}
			defer rs.Dispose()
			got := lb.Bytes()
			for j := range n {
				if has := bytes.Contains(got, fmt.Appendf(nil, "run-%d-value\n", j)); has != (i == j) {
					t.Errorf("run %d: log holds run %d's value: %v\n%s", i, j, has, got)
				}
			}
			f, err := rs.ExtractFile(ctx, "run.txt")
			if err != nil {
				t.Errorf("run %d: ExtractFile: %v", i, err)
				return
			}
			rc, err := f.Open()
			if err != nil {
				t.Errorf("run %d: Open: %v", i, err)
				return
			}
			c, err := io.ReadAll(rc)
			_ = rc.Close()
			if err != nil || string(c) != strconv.Itoa(i) {
				t.Errorf("run %d: run.txt = %q, %v", i, c, err)
			}
		})
	}
	wg.Wait()
}

func (s *suite) discard(t *testing.T) {
	r := s.newRun(t, Scenario{Steps: []Step{{Stdout: "never runs\n"}}})
	if err := r.b.SetEnv("WG_X", "x"); err != nil {
		t.Fatal(err)
	}
	if err := r.b.Discard(); err != nil {
		t.Errorf("Discard: %v", err)
	}
	if bytes.Contains(r.log.Bytes(), []byte("never runs")) {
		t.Errorf("a discarded sandbox ran its task")
	}
}

func (s *suite) readPID(t *testing.T, r *run, name string) int {
	t.Helper()
	if s.h.ProcessGone == nil || !s.h.Background {
		return 0
	}
	data, err := os.ReadFile(filepath.Join(r.tc.TaskDir, name))
	if err != nil {
		t.Fatalf("reading PID file: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		t.Fatalf("PID file holds %q", data)
	}
	return pid
}

// checkGone waits (polling process state, up to the harness timeout) for
// pid to be gone.
func (s *suite) checkGone(t *testing.T, ctx context.Context, pid int) {
	t.Helper()
	if pid == 0 {
		return
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !s.h.ProcessGone(pid) {
		select {
		case <-ctx.Done():
			t.Errorf("process %d of the task still runs after the task ended", pid)
			return
		case <-tick.C:
		}
	}
}

func readAll(t *testing.T, f engines.File) string {
	t.Helper()
	rc, err := f.Open()
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("reading: %v", err)
	}
	return string(b)
}

func (s *suite) extractFile(t *testing.T) {
	r := s.runToEnd(t, Scenario{Steps: []Step{
		{File: "a.txt", Content: "alpha\n"},
		{File: "dir/b.txt", Content: "beta"},
	}})
	ctx := s.ctx(t)
	f, err := r.rs.ExtractFile(ctx, "a.txt")
	if err != nil {
		t.Fatalf("ExtractFile(a.txt): %v", err)
	}
	if got := readAll(t, f); got != "alpha\n" {
		t.Errorf("a.txt = %q", got)
	}
	if got := readAll(t, f); got != "alpha\n" {
		t.Errorf("a.txt, second Open = %q", got)
	}
	if f.Size() != 6 && f.Size() != -1 {
		t.Errorf("Size = %d, want 6 (or -1 unknown)", f.Size())
	}
	if f, err := r.rs.ExtractFile(ctx, "dir/b.txt"); err != nil {
		t.Errorf("ExtractFile(dir/b.txt): %v", err)
	} else if got := readAll(t, f); got != "beta" {
		t.Errorf("dir/b.txt = %q", got)
	}
	if _, err := r.rs.ExtractFile(ctx, "missing.txt"); !errors.Is(err, engines.ErrNotFound) {
		t.Errorf("ExtractFile(missing) = %v, want ErrNotFound", err)
	}
	if _, err := r.rs.ExtractFile(ctx, "dir/missing/deeper.txt"); !errors.Is(err, engines.ErrNotFound) {
		t.Errorf("ExtractFile(dir/missing/deeper.txt) = %v, want ErrNotFound", err)
	}
	if _, err := r.rs.ExtractFile(ctx, "dir"); !errors.Is(err, engines.ErrNotAFile) {
		t.Errorf("ExtractFile(dir) = %v, want ErrNotAFile", err)
	}
}

func (s *suite) extractFolder(t *testing.T) {
	files := map[string]string{
		"out/z.txt":       "z",
		"out/a.txt":       "a",
		"out/sub/b.txt":   "b",
		"out/sub/c/d.txt": "d",
		"out/a-b.txt":     "ab",
		"other/x.txt":     "x",
	}
	var steps []Step
	for _, name := range slices.Sorted(mapsKeys(files)) {
		steps = append(steps, Step{File: name, Content: files[name]})
	}
	r := s.runToEnd(t, Scenario{Steps: steps})
	ctx := s.ctx(t)
	var got []string
	err := r.rs.ExtractFolder(ctx, "out", func(rel string, f engines.File) error {
		got = append(got, rel)
		if c := readAll(t, f); c != files["out/"+rel] {
			t.Errorf("%s = %q, want %q", rel, c, files["out/"+rel])
		}
		return nil
	})
	if err != nil {
		t.Fatalf("ExtractFolder(out): %v", err)
	}
	want := []string{"a-b.txt", "a.txt", "sub/b.txt", "sub/c/d.txt", "z.txt"}
	if !slices.Equal(got, want) {
		t.Errorf("ExtractFolder(out) walked %q, want %q (lexical order)", got, want)
	}
	stop := errors.New("stop")
	n := 0
	if err := r.rs.ExtractFolder(ctx, "out", func(string, engines.File) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
		t.Errorf("an error from fn: walk returned %v after %d calls, want it after 1", err, n)
	}
	if err := r.rs.ExtractFolder(ctx, "missing", func(string, engines.File) error { return nil }); !errors.Is(err, engines.ErrNotFound) {
		t.Errorf("ExtractFolder(missing) = %v, want ErrNotFound", err)
	}
	if err := r.rs.ExtractFolder(ctx, "out/a.txt", func(string, engines.File) error { return nil }); !errors.Is(err, engines.ErrNotAFolder) {
		t.Errorf("ExtractFolder(a file) = %v, want ErrNotAFolder", err)
	}
}

func (s *suite) artifactsAfterKill(t *testing.T) {
	r := s.newRun(t, s.sleeper())
	ctx := s.ctx(t)
	r.start(ctx)
	if err := r.log.WaitFor(ctx, []byte("ready to be killed\n")); err != nil {
		t.Fatalf("task did not get ready: %v", err)
	}
	if err := r.sb.Kill(); err != nil {
		t.Fatal(err)
	}
	rs := r.wait(ctx)
	f, err := rs.ExtractFile(ctx, "out/result.txt")
	if err != nil {
		t.Fatalf("ExtractFile after Kill: %v", err)
	}
	if got := readAll(t, f); got != "written before the kill\n" {
		t.Errorf("content = %q", got)
	}
	var names []string
	if err := rs.ExtractFolder(ctx, "out", func(rel string, _ engines.File) error { names = append(names, rel); return nil }); err != nil {
		t.Errorf("ExtractFolder after Kill: %v", err)
	}
	if !slices.Equal(names, []string{"result.txt"}) {
		t.Errorf("folder after Kill holds %q", names)
	}
}

func (s *suite) longLine(t *testing.T) {
	chunk := strings.Repeat("0123456789abcdef", 4096) // 64 KiB
	const repeat = 17                                 // 1 MiB + 64 KiB, no newline
	r := s.runToEnd(t, Scenario{Steps: []Step{{Stdout: "<", Repeat: 1}, {Stdout: chunk, Repeat: repeat}, {Stdout: ">"}}})
	want := "<" + strings.Repeat(chunk, repeat) + ">"
	if !bytes.Contains(r.log.Bytes(), []byte(want)) {
		t.Errorf("the %d-byte line without newline is not in the log intact (log is %d bytes)", len(want), len(r.log.Bytes()))
	}
}

func (s *suite) invalidUTF8(t *testing.T) {
	want := "bad bytes: \xff\xfe \xc3\x28 \xed\xa0\x80 \x00nul\r\n"
	r := s.runToEnd(t, Scenario{Steps: []Step{{Stdout: want}}})
	if !bytes.Contains(r.log.Bytes(), []byte(want)) {
		t.Errorf("invalid UTF-8 not passed through: log is %q", r.log.Bytes())
	}
}

func (s *suite) noTrailingNewline(t *testing.T) {
	r := s.runToEnd(t, Scenario{Steps: []Step{{Stdout: "first line\nlast line without newline"}}})
	got := r.log.Bytes()
	i := bytes.LastIndex(got, []byte("first line\nlast line without newline"))
	if i < 0 {
		t.Fatalf("output not in log: %q", got)
	}
	rest := got[i+len("first line\nlast line without newline"):]
	if len(rest) > 0 && !bytes.HasPrefix(rest, []byte("\n[")) {
		t.Errorf("engine altered the last line: it is followed by %q", rest)
	}
}

func (s *suite) background(t *testing.T) {
	r := s.runToEnd(t, Scenario{Steps: []Step{
		{Background: true, PIDFile: "bg.pid"},
		{Stdout: "main process done\n"},
	}})
	if !bytes.Contains(r.log.Bytes(), []byte("main process done\n")) {
		t.Errorf("log lacks output: %q", r.log.Bytes())
	}
	if !r.rs.Success() {
		t.Errorf("task failed with exit code %d", r.rs.ExitCode())
	}
	if s.h.ProcessGone != nil {
		s.checkGone(t, s.ctx(t), s.readPID(t, r, "bg.pid"))
	}
}

func (s *suite) containment(t *testing.T) {
	outside := realDir(t, t.TempDir())
	secret := filepath.Join(outside, "secret.txt")
	if err := os.WriteFile(secret, []byte("secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(outside, "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := s.runToEnd(t, Scenario{Steps: []Step{
		{File: "in/inside.txt", Content: "inside"},
		{File: "in/real.txt", Content: "real"},
		{Symlink: "in/link-inside.txt", Target: "real.txt"},
		{Symlink: "in/link-outside.txt", Target: secret},
		{Symlink: "in/link-dotdot.txt", Target: "../../" + filepath.Base(outside) + "/secret.txt"},
		{Symlink: "link-outside-dir", Target: filepath.Join(outside, "dir")},
		{Symlink: "in/dangling-outside", Target: filepath.Join(outside, "nope")},
	}})
	ctx := s.ctx(t)
	if f, err := r.rs.ExtractFile(ctx, "in/link-inside.txt"); err != nil {
		t.Errorf("symlink inside the task directory: %v", err)
	} else if got := readAll(t, f); got != "real" {
		t.Errorf("symlink inside = %q", got)
	}
	for _, p := range []string{"in/link-outside.txt", "../" + filepath.Base(outside) + "/secret.txt", "in/../../x", "link-outside-dir", "in/dangling-outside"} {
		if _, err := r.rs.ExtractFile(ctx, p); !errors.Is(err, engines.ErrOutsideTaskDir) {
			t.Errorf("ExtractFile(%q) = %v, want ErrOutsideTaskDir", p, err)
		}
	}
	if err := r.rs.ExtractFolder(ctx, "link-outside-dir", func(string, engines.File) error { return nil }); !errors.Is(err, engines.ErrOutsideTaskDir) {
		t.Errorf("ExtractFolder(symlink to outside dir) = %v, want ErrOutsideTaskDir", err)
	}
	// Absolute paths are used as given.
	if f, err := r.rs.ExtractFile(ctx, secret); err != nil {
		t.Errorf("ExtractFile(absolute path outside): %v", err)
	} else if got := readAll(t, f); got != "secret" {
		t.Errorf("absolute = %q", got)
	}
	if f, err := r.rs.ExtractFile(ctx, filepath.Join(r.tc.TaskDir, "in", "inside.txt")); err != nil {
		t.Errorf("ExtractFile(absolute path inside): %v", err)
	} else if f.HostPath() == "" {
		t.Errorf("HostPath empty for a host file")
	}
	// A folder walk passes files and symlinks that stay inside, and never
	// what leaves the task directory.
	var got []string
	err := r.rs.ExtractFolder(ctx, "in", func(rel string, f engines.File) error {
		got = append(got, rel)
		if c := readAll(t, f); strings.Contains(c, "secret") {
			t.Errorf("walk passed %s with content from outside the task directory", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("ExtractFolder(in): %v", err)
	}
	want := []string{"inside.txt", "link-inside.txt", "real.txt"}
	if !slices.Equal(got, want) {
		t.Errorf("ExtractFolder(in) walked %q, want %q", got, want)
	}
}

// LogBuffer is an in-memory task log sink whose content can be awaited.
type LogBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
}

// NewLogBuffer returns an empty LogBuffer.
func NewLogBuffer() *LogBuffer { return &LogBuffer{changed: make(chan struct{})} }

// Write appends p.
func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	close(l.changed)
	l.changed = make(chan struct{})
	return len(p), nil
}

// Bytes returns a copy of the content.
func (l *LogBuffer) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Clone(l.buf.Bytes())
}

// WaitFor blocks until the content contains sub or ctx ends.
func (l *LogBuffer) WaitFor(ctx context.Context, sub []byte) error {
	for {
		l.mu.Lock()
		found := bytes.Contains(l.buf.Bytes(), sub)
		ch := l.changed
		l.mu.Unlock()
		if found {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("waiting for %q in the log: %w", sub, ctx.Err())
		}
	}
}
