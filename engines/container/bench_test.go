package container

import (
	"context"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/workergen/workergen/engines"
)

// BenchmarkTrueOverhead runs `true` in the test image through the engine
// (NewSandboxBuilder, Start, Wait, Dispose) and with `podman run --rm`,
// interleaved, and reports the median of each and the engine's overhead
// over podman's own floor. engine-ms is what the worker waits for (the
// container is removed in the background); engine-removed-ms includes that
// removal, the same work `podman run --rm` does. Needs the podman CLI on
// the daemon's host.
//
//	go test -run '^$' -bench TrueOverhead -benchtime 30x ./engines/container
func BenchmarkTrueOverhead(b *testing.B) {
	e := newTestEngine(b, nil)
	podman, err := exec.LookPath("podman")
	if err != nil {
		b.Skip("podman CLI not found")
	}
	img := testImage(b)
	ctx := context.Background()
	// Warm up both paths (image present, caches of the daemon).
	runTrue(b, e)
	if out, err := exec.Command(podman, "run", "--rm", img, "true").CombinedOutput(); err != nil {
		b.Fatalf("podman run: %v: %s", err, out)
	}
	var viaEngine, viaEngineRemoved, viaPodman []time.Duration
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		runTrue(b, e)
		viaEngine = append(viaEngine, time.Since(t0))
		e.bg.Wait() // the background removal, so podman's run does not share the CPU with it
		viaEngineRemoved = append(viaEngineRemoved, time.Since(t0))
		t0 = time.Now()
		if out, err := exec.CommandContext(ctx, podman, "run", "--rm", img, "true").CombinedOutput(); err != nil {
			b.Fatalf("podman run: %v: %s", err, out)
		}
		viaPodman = append(viaPodman, time.Since(t0))
	}
	b.StopTimer()
	me, mr, mp := median(viaEngine), median(viaEngineRemoved), median(viaPodman)
	b.ReportMetric(float64(me.Microseconds())/1000, "engine-ms/median")
	b.ReportMetric(float64(mr.Microseconds())/1000, "engine-removed-ms/median")
	b.ReportMetric(100*(float64(mr)-float64(mp))/float64(mp), "overhead-removed-%")
	b.ReportMetric(float64(mp.Microseconds())/1000, "podman-run-ms/median")
	b.ReportMetric(100*(float64(me)-float64(mp))/float64(mp), "overhead-%")
}

func runTrue(b *testing.B, e *Engine) {
	b.Helper()
	r := newRun(b, e, payload(b, "true"))
	ctx := context.Background()
	bl, err := e.NewSandboxBuilder(ctx, r.tc)
	if err != nil {
		b.Fatal(err)
	}
	s, err := bl.Start(ctx)
	if err != nil {
		b.Fatal(err)
	}
	res, err := s.Wait(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if !res.Success() {
		b.Fatalf("true failed: %s", r.log.String())
	}
	if err := res.Dispose(); err != nil {
		b.Fatal(err)
	}
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// BenchmarkExtractFolder1GiB copies a 1 GiB directory (64 files of 16 MiB)
// out of a stopped container with ExtractFolder and reads every file, and
// reports the throughput and the process's peak RSS during the copy (VmHWM,
// reset before it where the kernel allows).
//
//	go test -run '^$' -bench ExtractFolder1GiB -benchtime 1x ./engines/container
func BenchmarkExtractFolder1GiB(b *testing.B) {
	e := newTestEngine(b, nil)
	const files, size = 64, 16 << 20
	script := "mkdir /big && i=0; while [ $i -lt " + strconv.Itoa(files) + " ]; do head -c " + strconv.Itoa(size) + " /dev/zero > /big/f$i; i=$((i+1)); done"
	r := newRun(b, e, payload(b, "sh", "-c", script))
	res := runTask(b, e, r, nil)
	if !res.Success() {
		b.Fatalf("writing the directory failed: %s", r.log.String())
	}
	ctx := context.Background()
	buf := make([]byte, 1<<20)
	var total int64
	b.ResetTimer()
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
	rssBefore := peakRSS()
	start := time.Now()
	for range b.N {
		n := 0
		err := res.ExtractFolder(ctx, "/big", func(rel string, f engines.File) error {
			rc, err := f.Open()
			if err != nil {
				return err
			}
			defer rc.Close()
			c, err := io.CopyBuffer(io.Discard, rc, buf)
			total += c
			n++
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
		if n != files {
			b.Fatalf("%d files, want %d", n, files)
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.SetBytes(files * size)
	b.ReportMetric(float64(total)/elapsed.Seconds()/1e6, "MB/s")
	b.ReportMetric(float64(peakRSS())/(1<<20), "peak-RSS-MiB")
	b.ReportMetric(float64(rssBefore)/(1<<20), "RSS-before-MiB")
}

// peakRSS returns VmHWM in bytes.
func peakRSS() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return -1
}
