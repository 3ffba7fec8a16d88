//go:build linux

package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func median(ds []time.Duration) time.Duration {
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[len(ds)/2]
}

// BenchmarkRunTrue is `worker run` of a task whose command is `true`, the
// whole process from exec to exit (validation, task directory, log,
// stages, manifest). Compare with BenchmarkExecTrue.
func BenchmarkRunTrue(b *testing.B) {
	dir := b.TempDir()
	taskFile := filepath.Join(dir, "true.yml")
	require.NoError(b, os.WriteFile(taskFile, []byte("payload:\n  maxRunTime: 30\n  command: [[\"true\"]]\n"), 0o644))
	var ds []time.Duration
	for i := 0; b.Loop(); i++ {
		start := time.Now()
		out, err := exec.Command(workerBin, "run", "--output", filepath.Join(dir, strconv.Itoa(i)), taskFile).CombinedOutput()
		ds = append(ds, time.Since(start))
		if err != nil {
			b.Fatalf("%v: %s", err, out)
		}
	}
	b.ReportMetric(float64(median(ds).Microseconds()), "median-µs/task")
}

// BenchmarkExecTrue is the floor: exec of /bin/true.
func BenchmarkExecTrue(b *testing.B) {
	var ds []time.Duration
	for b.Loop() {
		start := time.Now()
		require.NoError(b, exec.Command("true").Run())
		ds = append(ds, time.Since(start))
	}
	b.ReportMetric(float64(median(ds).Microseconds()), "median-µs/task")
}

// BenchmarkWorkTrue runs b.N `true` tasks through `worker work` against the
// embedded Queue, at capacity 1 and 8: tasks per second over the whole
// run, and the median time the Queue saw between claim (run started) and
// resolution (run resolved) per task.
func BenchmarkWorkTrue(b *testing.B) {
	for _, capacity := range []int{1, 8} {
		b.Run(fmt.Sprintf("capacity=%d", capacity), func(b *testing.B) {
			e := newEnv(b, time.Minute)
			ids := make([]string, b.N)
			for i := range ids {
				ids[i] = e.task(map[string]any{"command": []any{[]any{"true"}}, "maxRunTime": 30}, 0)
			}
			b.ResetTimer()
			start := time.Now()
			cmd, out := e.start(map[string]any{"numberOfTasksToRun": b.N, "capacity": capacity})
			e.wait(cmd, out)
			elapsed := time.Since(start)
			b.StopTimer()
			var ds []time.Duration
			for _, id := range ids {
				st, err := e.queue.Status(id)
				require.NoError(b, err)
				r := st.Runs[0]
				if r.State != "completed" {
					b.Fatalf("task %s: %s", id, r.State)
				}
				ds = append(ds, r.Resolved.Sub(r.Started))
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "tasks/s")
			b.ReportMetric(float64(median(ds).Milliseconds()), "median-claim-to-resolve-ms")
		})
	}
}

// BenchmarkUpload1GiB uploads one 1 GiB artifact (random bytes, identity
// encoding) through `worker work` to the embedded Queue: MB/s of the run's
// upload phase and the worker's peak RSS.
func BenchmarkUpload1GiB(b *testing.B) {
	const size = 1 << 30
	src := filepath.Join(b.TempDir(), "big.bin")
	f, err := os.Create(src)
	require.NoError(b, err)
	cmd := exec.Command("head", "-c", strconv.Itoa(size), "/dev/urandom")
	cmd.Stdout = f
	require.NoError(b, cmd.Run())
	require.NoError(b, f.Close())
	for b.Loop() {
		e := newEnv(b, time.Minute)
		id := e.task(map[string]any{
			"command":    []any{[]any{"true"}},
			"maxRunTime": 600,
			"artifacts":  []any{map[string]any{"type": "file", "path": src, "name": "public/big.bin", "contentEncoding": "identity"}},
		}, 0)
		start := time.Now()
		wcmd, out := e.start(map[string]any{"numberOfTasksToRun": 1})
		e.wait(wcmd, out)
		elapsed := time.Since(start)
		st, err := e.queue.Status(id)
		require.NoError(b, err)
		require.Equal(b, "completed", st.Runs[0].State, "%s", out)
		ru := wcmd.ProcessState.SysUsage().(*syscall.Rusage)
		b.ReportMetric(float64(size)/1e6/elapsed.Seconds(), "MB/s")
		b.ReportMetric(float64(ru.Maxrss)/1024, "peak-RSS-MiB")
	}
}

// BenchmarkIdleRSS is the worker's resident memory after a few seconds of
// long-polling an empty queue.
func BenchmarkIdleRSS(b *testing.B) {
	for b.Loop() {
		e := newEnv(b, time.Minute)
		cmd, _ := e.start(nil)
		time.Sleep(3 * time.Second)
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
		require.NoError(b, err)
		for _, line := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(line, "VmRSS:") {
				kb, _ := strconv.Atoi(strings.Fields(line)[1])
				b.ReportMetric(float64(kb)/1024, "idle-RSS-MiB")
			}
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}
}
