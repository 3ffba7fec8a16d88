package chainoftrust_test

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/engines/native"
	"github.com/workergen/workergen/plugins"
	"github.com/workergen/workergen/plugins/artifacts"
	"github.com/workergen/workergen/plugins/chainoftrust"
	"github.com/workergen/workergen/plugins/plugintest"
	"github.com/workergen/workergen/plugins/tasklog"
	"github.com/workergen/workergen/task"
)

// BenchmarkChainOfTrust100Artifacts runs, per iteration, one native task
// whose task directory holds 100 files of 16 KiB (written before the
// timer starts) which the artifacts plugin publishes, through the worker's
// stage runner (plugintest; the sink reads every
// artifact's content, as an upload does), once without and once with
// features.chainOfTrust. added-ns/task is the time Chain of Trust adds
// per task on the worker: hashing the artifacts as they are
// read, copying and publishing certified.log, and building, signing and
// publishing chain-of-trust.json and its .sig. The network time of the
// three extra uploads (a log and two files of a few KiB) comes on top.
//
//	go test ./plugins/chainoftrust -run '^$' -bench 'ChainOfTrust100' -count 5
func BenchmarkChainOfTrust100Artifacts(b *testing.B) {
	if runtime.GOOS != "linux" {
		b.Skip("native engine on linux")
	}
	keyPath, _ := newKeyTB(b)
	cfg, _ := json.Marshal(map[string]any{"ed25519SigningKeyLocation": keyPath})
	cot, err := chainoftrust.New(plugins.Options{Config: cfg})
	if err != nil {
		b.Fatal(err)
	}
	art, _ := artifacts.New(plugins.Options{})
	tl, _ := tasklog.New(plugins.Options{})
	eng, err := native.New(engines.Options{})
	if err != nil {
		b.Fatal(err)
	}
	content := make([]byte, 16<<10)
	_, _ = rand.Read(content)
	run := func(b *testing.B, on bool) time.Duration {
		payload := map[string]any{
			"command":    [][]string{{"true"}},
			"maxRunTime": 120,
			"artifacts":  []any{map[string]any{"type": "directory", "path": "out", "name": "public/out"}},
			"features":   map[string]any{"chainOfTrust": on},
		}
		dir := filepath.Join(b.TempDir(), "task")
		if err := os.MkdirAll(filepath.Join(dir, "out"), 0o755); err != nil {
			b.Fatal(err)
		}
		for i := range 100 {
			if err := os.WriteFile(filepath.Join(dir, "out", fmt.Sprintf("f%03d.bin", i)), content, 0o644); err != nil {
				b.Fatal(err)
			}
		}
		sink := &plugintest.Sink{DiscardContent: true}
		start := time.Now()
		res := plugintest.Run(b, plugintest.Case{Plugins: []plugins.Plugin{art, cot, tl}, Engine: eng, Payload: payload, Sink: sink, TaskDir: dir})
		took := time.Since(start)
		if res.Resolution.State != task.Completed {
			b.Fatalf("resolved %v: %v", res.Resolution, res.Errors)
		}
		if want := 101 + 3*btoi(on); len(sink.Artifacts()) < want {
			b.Fatalf("%d artifacts published, want at least %d", len(sink.Artifacts()), want)
		}
		return took
	}
	// Each iteration runs the task both ways, alternating which goes
	// first, so that the load of a shared machine weighs on both alike.
	var off, on time.Duration
	n := 0
	for b.Loop() {
		if n%2 == 0 {
			off += run(b, false)
			on += run(b, true)
		} else {
			on += run(b, true)
			off += run(b, false)
		}
		n++
	}
	b.ReportMetric(float64(off.Nanoseconds())/float64(n), "off-ns/task")
	b.ReportMetric(float64(on.Nanoseconds())/float64(n), "on-ns/task")
	b.ReportMetric(float64((on-off).Nanoseconds())/float64(n), "added-ns/task")
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
