//go:build unix

package native_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/engines/enginetest"
	"github.com/workergen/workergen/engines/native"
	"github.com/workergen/workergen/task"
)

type testRun struct {
	tc  *task.Context
	log *enginetest.LogBuffer
	b   engines.SandboxBuilder
}

func newTestRun(t *testing.T, e engines.Engine, payload string) (*testRun, error) {
	t.Helper()
	dir, err := filepath.EvalSymlinks(t.TempDir())
	require.NoError(t, err)
	lb := enginetest.NewLogBuffer()
	tc := &task.Context{TaskID: "T", TaskDir: dir, Log: task.NewLog(lb), Definition: task.Definition{Payload: json.RawMessage(payload)}}
	b, err := e.NewSandboxBuilder(context.Background(), tc)
	return &testRun{tc: tc, log: lb, b: b}, err
}

func (r *testRun) run(t *testing.T) engines.ResultSet {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := r.b.Start(ctx)
	require.NoError(t, err)
	rs, err := s.Wait(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = rs.Dispose() })
	return rs
}

func cmdPayload(cmds ...[]string) string {
	b, _ := json.Marshal(map[string]any{"command": cmds})
	return string(b)
}

func TestCommandsRunInOrderAndStopAtFirstFailure(t *testing.T) {
	e := newEngine(t, `{}`)
	r, err := newTestRun(t, e, cmdPayload(
		[]string{"/bin/sh", "-c", "echo one; echo one > one.txt"},
		[]string{"/bin/sh", "-c", "echo two; exit 3"},
		[]string{"/bin/sh", "-c", "echo three"},
	))
	require.NoError(t, err)
	rs := r.run(t)
	assert.Equal(t, 3, rs.ExitCode())
	assert.False(t, rs.Success())
	log := string(r.log.Bytes())
	assert.Contains(t, log, "one\n")
	assert.Contains(t, log, "two\n")
	assert.NotContains(t, log, "three\n")
	assert.Contains(t, log, "running command 2/3: /bin/sh -c 'echo two; exit 3'")
	assert.Contains(t, log, "command 2/3 exited with code 3")
	_, err = rs.ExtractFile(context.Background(), "one.txt")
	assert.NoError(t, err)
}

func TestProgramLookup(t *testing.T) {
	e := newEngine(t, `{}`)
	cases := []struct {
		name    string
		payload string
		env     map[string]string
		code    int
		log     string
	}{
		{"found in task PATH", cmdPayload([]string{"mytool"}), map[string]string{"PATH": "/usr/bin:/bin:tools"}, 0, "tool ran"},
		{"relative path", cmdPayload([]string{"./tools/mytool"}), nil, 0, "tool ran"},
		{"missing", cmdPayload([]string{"no-such-program-wg"}), nil, 127, "executable file not found"},
		{"not executable", cmdPayload([]string{"./data.txt"}), nil, 126, "permission denied"},
		{"missing interpreter", cmdPayload([]string{"./bad-interp"}), nil, 127, "no such file"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := newTestRun(t, e, c.payload)
			require.NoError(t, err)
			require.NoError(t, os.MkdirAll(filepath.Join(r.tc.TaskDir, "tools"), 0o755))
			require.NoError(t, os.WriteFile(filepath.Join(r.tc.TaskDir, "tools", "mytool"), []byte("#!/bin/sh\necho tool ran\n"), 0o755))
			require.NoError(t, os.WriteFile(filepath.Join(r.tc.TaskDir, "data.txt"), []byte("x"), 0o644))
			require.NoError(t, os.WriteFile(filepath.Join(r.tc.TaskDir, "bad-interp"), []byte("#!/no/such/interpreter\n"), 0o755))
			for k, v := range c.env {
				require.NoError(t, r.b.SetEnv(k, v))
			}
			rs := r.run(t)
			assert.Equal(t, c.code, rs.ExitCode())
			assert.Contains(t, strings.ToLower(string(r.log.Bytes())), strings.ToLower(c.log))
		})
	}
}

func TestEnvironmentIsFilteredAndCredentialsNeverPass(t *testing.T) {
	t.Setenv("TASKCLUSTER_ACCESS_TOKEN", "secret-token")
	t.Setenv("WG_NOT_INHERITED", "leak")
	t.Setenv("WG_INHERITED_A", "a")
	t.Setenv("WG_INHERITED_B", "b")
	e := newEngine(t, `{"inheritEnv":["PATH","WG_INHERITED_*"]}`)
	r, err := newTestRun(t, e, cmdPayload([]string{"/usr/bin/env"}))
	require.NoError(t, err)
	require.NoError(t, r.b.SetEnv("WG_INHERITED_B", "overridden"))
	require.NoError(t, r.b.SetEnv("TASK_ID", "T"))
	rs := r.run(t)
	require.True(t, rs.Success())
	log := string(r.log.Bytes())
	assert.NotContains(t, log, "secret-token")
	assert.NotContains(t, log, "WG_NOT_INHERITED")
	assert.Contains(t, log, "WG_INHERITED_A=a\n")
	assert.Contains(t, log, "WG_INHERITED_B=overridden\n")
	assert.Contains(t, log, "TASK_ID=T\n")
	assert.Contains(t, log, "PATH=")
}

func TestKillStopsLaterCommands(t *testing.T) {
	e := newEngine(t, `{}`)
	r, err := newTestRun(t, e, cmdPayload(
		[]string{"/bin/sh", "-c", "echo first-started; sleep 3600"},
		[]string{"/bin/sh", "-c", "echo second-started"},
	))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := r.b.Start(ctx)
	require.NoError(t, err)
	require.NoError(t, r.log.WaitFor(ctx, []byte("first-started\n")))
	require.NoError(t, s.Kill())
	rs, err := s.Wait(ctx)
	require.NoError(t, err)
	defer rs.Dispose()
	assert.True(t, rs.Killed())
	assert.Equal(t, -1, rs.ExitCode())
	assert.NotContains(t, string(r.log.Bytes()), "second-started")
}

func TestBackgroundProcessServesLaterCommands(t *testing.T) {
	// A background process started by one command still runs during the
	// next (generic-worker behaviour), and is killed when the task ends.
	e := newEngine(t, `{}`)
	r, err := newTestRun(t, e, cmdPayload(
		[]string{"/bin/sh", "-c", "sleep 3600 & echo $! > bg.pid"},
		[]string{"/bin/sh", "-c", `kill -0 "$(cat bg.pid)" && echo background-alive`},
	))
	require.NoError(t, err)
	rs := r.run(t)
	assert.True(t, rs.Success(), string(r.log.Bytes()))
	assert.Contains(t, string(r.log.Bytes()), "background-alive")
	data, err := os.ReadFile(filepath.Join(r.tc.TaskDir, "bg.pid"))
	require.NoError(t, err)
	var pid int
	_, err = fmtSscan(strings.TrimSpace(string(data)), &pid)
	require.NoError(t, err)
	deadline := time.Now().Add(time.Minute)
	for !processGone(pid) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	assert.True(t, processGone(pid), "background process survived the task")
}

func TestSignalledCommand(t *testing.T) {
	e := newEngine(t, `{}`)
	r, err := newTestRun(t, e, cmdPayload([]string{"/bin/sh", "-c", "kill -TERM $$"}))
	require.NoError(t, err)
	rs := r.run(t)
	assert.Equal(t, -1, rs.ExitCode())
	assert.False(t, rs.Killed())
	assert.False(t, rs.Success())
	assert.Contains(t, string(r.log.Bytes()), "terminated by signal 15")
}

func TestMalformedPayload(t *testing.T) {
	e := newEngine(t, `{}`)
	_, err := newTestRun(t, e, `{"command":[["echo"],"oops"]}`)
	var ee *task.ExceptionError
	require.True(t, errors.As(err, &ee))
	assert.Equal(t, task.ReasonMalformedPayload, ee.Reason)
	assert.Contains(t, err.Error(), "payload.command[1]")
}

func fmtSscan(s string, p *int) (int, error) { return fmt.Sscan(s, p) }

func TestEscapedProcessHoldingOutputDoesNotHang(t *testing.T) {
	setsid, err := exec.LookPath("setsid")
	if err != nil {
		t.Skip("setsid not installed")
	}
	// The grandchild leaves the task's process group (new session), so
	// the group kill cannot reach it. With cgroups the cgroup kill does;
	// without, the engine stops reading after its drain timeout instead of
	// hanging.
	for _, cgroups := range []bool{false, true} {
		t.Run(fmt.Sprintf("cgroups=%v", cgroups), func(t *testing.T) {
			e := newEngine(t, fmt.Sprintf(`{"cgroups":%v}`, cgroups))
			if cgroups && !e.(*native.Engine).UsesCgroups() {
				t.Skip("cgroups unavailable here")
			}
			r, err := newTestRun(t, e, cmdPayload([]string{"/bin/sh", "-c", setsid + " /bin/sh -c 'echo $$ > escaped.pid; exec sleep 3600' & while [ ! -s escaped.pid ]; do sleep 0.01; done; echo main-done"}))
			require.NoError(t, err)
			rs := r.run(t)
			assert.True(t, rs.Success())
			log := string(r.log.Bytes())
			assert.Contains(t, log, "main-done")
			data, err := os.ReadFile(filepath.Join(r.tc.TaskDir, "escaped.pid"))
			require.NoError(t, err)
			var pid int
			_, err = fmtSscan(strings.TrimSpace(string(data)), &pid)
			require.NoError(t, err)
			if cgroups {
				assert.NotContains(t, log, "no longer reading it")
				deadline := time.Now().Add(time.Minute)
				for !processGone(pid) && time.Now().Before(deadline) {
					time.Sleep(10 * time.Millisecond)
				}
				assert.True(t, processGone(pid), "escaped process survived the task")
				return
			}
			assert.Contains(t, log, "no longer reading it")
			_ = syscall.Kill(pid, syscall.SIGKILL) // the test's own leftover
		})
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("no space left on device") }

// A task log that cannot be written (disk full) must not hang the run:
// the output is still drained, and the worker's lines do not block.
func TestLogWriteErrorDoesNotHang(t *testing.T) {
	e := newEngine(t, `{}`)
	dir, err := filepath.EvalSymlinks(t.TempDir())
	require.NoError(t, err)
	tc := &task.Context{TaskID: "T", TaskDir: dir, Log: task.NewLog(failingWriter{}),
		Definition: task.Definition{Payload: json.RawMessage(cmdPayload(
			[]string{"/bin/sh", "-c", "head -c 3000000 /dev/zero; exit 2"},
			[]string{"/bin/true"}))}}
	b, err := e.NewSandboxBuilder(context.Background(), tc)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := b.Start(ctx)
	require.NoError(t, err)
	rs, err := s.Wait(ctx)
	require.NoError(t, err, "Wait returned before the deadline")
	assert.Equal(t, 2, rs.ExitCode())
	require.NoError(t, rs.Dispose())
}
