package native_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/engines/native"
	"github.com/workergen/workergen/task"
)

// runOnce runs payload to its result with the log going to w.
func runOnce(b *testing.B, e engines.Engine, dir string, payload json.RawMessage, w io.Writer) engines.ResultSet {
	tc := &task.Context{TaskID: "B", TaskDir: dir, Log: task.NewLog(w), Definition: task.Definition{Payload: payload}}
	ctx := context.Background()
	sb, err := e.NewSandboxBuilder(ctx, tc)
	if err != nil {
		b.Fatal(err)
	}
	s, err := sb.Start(ctx)
	if err != nil {
		b.Fatal(err)
	}
	rs, err := s.Wait(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if err := rs.Dispose(); err != nil {
		b.Fatal(err)
	}
	return rs
}

// BenchmarkTrueDirect is the baseline: os/exec running true.
func BenchmarkTrueDirect(b *testing.B) {
	path, err := exec.LookPath("true")
	if err != nil {
		b.Skip(err)
	}
	for b.Loop() {
		if err := exec.Command(path).Run(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTrueEngine is the engine's start-to-result time for a task whose
// command is `true`; minus BenchmarkTrueDirect it is the engine's own
// overhead.
func BenchmarkTrueEngine(b *testing.B) {
	for _, cgroups := range []bool{false, true} {
		b.Run("cgroups="+strconv.FormatBool(cgroups), func(b *testing.B) {
			e := newEngine(b, `{"cgroups":`+strconv.FormatBool(cgroups)+`}`)
			if cgroups && !e.(*native.Engine).UsesCgroups() {
				b.Skip("cgroups unavailable")
			}
			dir := b.TempDir()
			payload := json.RawMessage(`{"command":[["true"]]}`)
			for b.Loop() {
				if rs := runOnce(b, e, dir, payload, io.Discard); !rs.Success() {
					b.Fatal("true failed")
				}
			}
		})
	}
}

// BenchmarkLogThroughput runs a task writing 1 GiB to stdout (dd); the log goes
// to a file (as the worker's backing log does) or is discarded. It reports
// MB/s and the process's peak RSS (VmHWM, reset first through
// /proc/self/clear_refs).
func BenchmarkLogThroughput(b *testing.B) {
	const size = 1 << 30
	// dd writes 1 MiB per write(2), so the writer is not the bottleneck.
	payload := json.RawMessage(`{"command":[["dd","if=/dev/zero","bs=1048576","count=` + strconv.Itoa(size>>20) + `","status=none"]]}`)
	for _, sink := range []string{"file", "discard"} {
		b.Run(sink, func(b *testing.B) {
			e := newEngine(b, `{}`)
			dir := b.TempDir()
			b.SetBytes(size)
			resetPeakRSS()
			for b.Loop() {
				var w io.Writer = io.Discard
				var f *os.File
				if sink == "file" {
					var err error
					f, err = os.Create(filepath.Join(dir, "live_backing.log"))
					if err != nil {
						b.Fatal(err)
					}
					w = f
				}
				rs := runOnce(b, e, dir, payload, w)
				if f != nil {
					st, _ := f.Stat()
					_ = f.Close()
					if st.Size() < size { // plus the engine's "running command" line
						b.Fatalf("log holds %d bytes, want at least %d", st.Size(), size)
					}
				}
				if !rs.Success() {
					b.Fatal("task failed")
				}
			}
			b.ReportMetric(float64(peakRSS())/(1<<20), "peakRSS-MiB")
		})
	}
}

func resetPeakRSS() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// peakRSS returns VmHWM in bytes.
func peakRSS() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return -1
}
