//go:build unix

package native_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/engines/native"
)

// TestReapFromHandles: the handles a sandbox reports are enough for
// Reap, as a later worker process would call it, to kill every process of
// the run: with a cgroup also a setsid grandchild, without one the
// process groups. Without a cgroup both commands' groups are reported;
// with one, the cgroup alone, once, before any command starts (each report
// is a durable journal write the worker makes on the way to the task).
func TestReapFromHandles(t *testing.T) {
	for _, cgroups := range []bool{false, true} {
		t.Run(fmt.Sprintf("cgroups=%v", cgroups), func(t *testing.T) {
			e := newEngine(t, fmt.Sprintf(`{"cgroups":%v}`, cgroups))
			if cgroups && !e.(*native.Engine).UsesCgroups() {
				t.Skip("cgroup v2 delegation unavailable")
			}
			pids := filepath.Join(t.TempDir(), "pids")
			script := fmt.Sprintf("sleep 600 & echo $! >> %s; echo $$ >> %[1]s; wait", pids)
			if cgroups {
				script = fmt.Sprintf("setsid sh -c 'echo $$ >> %s; exec sleep 600' & ", pids) + script
			}
			r, err := newTestRun(t, e, cmdPayload([]string{"/bin/true"}, []string{"/bin/sh", "-c", script}))
			require.NoError(t, err)
			var mu sync.Mutex
			var got []engines.Handles
			r.b.(engines.HandleReporter).ReportHandles(func(h engines.Handles) {
				mu.Lock()
				defer mu.Unlock()
				got = append(got, h)
			})
			s, err := r.b.Start(context.Background())
			require.NoError(t, err)
			want := 2
			if cgroups {
				want = 3
			}
			waitFor(t, func() bool { return len(readPIDs(pids)) == want })
			mu.Lock()
			last := got[len(got)-1]
			mu.Unlock()
			if cgroups {
				assert.NotEmpty(t, last.Cgroup)
				assert.Len(t, got, 1, "the cgroup is reported once, before any command starts")
				assert.Empty(t, last.ProcessGroups, "the cgroup holds every process")
			} else {
				assert.True(t, got[0].IsZero(), "a first report, with nothing to name yet, comes before any command starts")
				assert.Len(t, last.ProcessGroups, 2, "one group per command")
				if runtime.GOOS == "linux" {
					assert.NotEmpty(t, last.BootID)
				}
			}

			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			require.NoError(t, e.(engines.Reaper).Reap(ctx, last))
			for _, pid := range readPIDs(pids) {
				waitFor(t, func() bool { return !alive(pid) })
			}
			if cgroups {
				assert.NoDirExists(t, last.Cgroup)
			}
			require.NoError(t, e.(engines.Reaper).Reap(ctx, last), "reaping again is fine")
			rs, err := s.Wait(ctx)
			require.NoError(t, err)
			_ = rs.Dispose()
		})
	}
}

func readPIDs(path string) []int {
	data, _ := os.ReadFile(path)
	var pids []int
	for _, f := range splitFields(string(data)) {
		var n int
		if _, err := fmtSscan(f, &n); err == nil {
			pids = append(pids, n)
		}
	}
	return pids
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		require.True(t, time.Now().Before(deadline), "timed out")
		time.Sleep(10 * time.Millisecond)
	}
}

func splitFields(s string) []string { return strings.Fields(s) }

// alive reports whether pid runs and is not a zombie (Linux: /proc; else
// kill 0).
func alive(pid int) bool {
	if data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		i := strings.LastIndexByte(string(data), ')')
		f := strings.Fields(string(data[i+1:]))
		return len(f) > 0 && f[0] != "Z" && f[0] != "X"
	}
	return syscall.Kill(pid, 0) == nil
}
