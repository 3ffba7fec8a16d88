package artifacts_test

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/plugins"
	"github.com/workergen/workergen/plugins/plugintest"
	"github.com/workergen/workergen/task"
)

// BenchmarkDirectoryArtifact10k publishes one directory artifact of 10,000
// small files (100 directories of 100 files, 100-300 bytes each) through
// plugintest with the mock engine, whose file access is the native engine's
// (engines/internal/hostdir). The sink reads every file fully and keeps
// nothing. Reported: time per run (whole run), collect-ms/op (the Stopped
// stage: walk, open, sniff, publish), files/s during collection, and the
// process's peak RSS (VmHWM) after the runs next to its RSS before them
// (the test binary and the 10,000 files' setup).
func BenchmarkDirectoryArtifact10k(b *testing.B) {
	benchDirectory(b, nil, nil)
}

// benchDirectory is BenchmarkDirectoryArtifact10k with a given engine and
// extra payload fields (the engine's command).
func benchDirectory(b *testing.B, engine engines.Engine, extra M) {
	taskDir := b.TempDir()
	const dirs, per = 100, 100
	for d := range dirs {
		dir := filepath.Join(taskDir, "out", fmt.Sprintf("d%03d", d))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		for f := range per {
			content := strings.Repeat(fmt.Sprintf("line %d of file %d\n", f, d), 5+f%10)
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%03d.txt", f)), []byte(content), 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	payload := M{"artifacts": []any{M{"type": "directory", "path": "out", "name": "public/out"}}}
	for k, v := range extra {
		payload[k] = v
	}
	p := newPlugin(b, 0)
	baseline := rssKiB("VmRSS:")
	var collect time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		sink := &plugintest.Sink{DiscardContent: true}
		res := plugintest.Run(b, plugintest.Case{
			Plugins: []plugins.Plugin{p},
			Engine:  engine,
			TaskDir: taskDir,
			Sink:    sink,
			Payload: payload,
		})
		if res.Resolution.State != task.Completed || len(res.Artifacts) != dirs*per {
			b.Fatalf("resolution %s, %d artifacts, errors %v", res.Resolution, len(res.Artifacts), res.Errors)
		}
		collect += res.Durations[plugintest.StageStopped]
	}
	b.StopTimer()
	b.ReportMetric(float64(collect.Milliseconds())/float64(b.N), "collect-ms/op")
	b.ReportMetric(float64(dirs*per)*float64(b.N)/collect.Seconds(), "files/s")
	if hwm := rssKiB("VmHWM:"); hwm > 0 {
		b.ReportMetric(float64(hwm)/1024, "peak-RSS-MiB")
		b.ReportMetric(float64(baseline)/1024, "RSS-before-MiB")
	}
}

// rssKiB returns a field of /proc/self/status in KiB ("VmHWM:" is the peak
// resident set size, "VmRSS:" the current one), or 0 when unavailable
// (not Linux).
func rssKiB(field string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), field); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return n
		}
	}
	return 0
}
