package localqueue

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/workergen/workergen/taskcluster"
)

// benchServer starts a Server on the real clock behind an HTTP server.
func benchServer(b *testing.B, noSync bool) (*Server, string) {
	b.Helper()
	s, err := New(Options{
		Dir:     b.TempDir(),
		Clients: []Client{{ClientID: "w", AccessToken: "t", Scopes: []string{"*"}}},
		NoSync:  noSync, LongPoll: time.Second, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	b.Cleanup(func() {
		srv.Close()
		_ = s.Close()
	})
	return s, srv.URL
}

func benchDef() map[string]any {
	now := time.Now()
	return map[string]any{
		"taskQueueId": testQueue, "created": now, "deadline": now.Add(time.Hour),
		"payload":  map[string]any{"command": []any{[]any{"true"}}},
		"metadata": map[string]any{"name": "b", "description": "b", "owner": "b@example.com", "source": "https://example.com"},
	}
}

// BenchmarkClaimResolve measures the Queue side of one trivial task over
// HTTP with Hawk: claimWork, reclaimTask, createArtifact (error type),
// reportCompleted, through the project's taskcluster client.
func BenchmarkClaimResolve(b *testing.B) {
	for _, sync := range []bool{true, false} {
		name := "fsync"
		if !sync {
			name = "nosync"
		}
		b.Run(name, func(b *testing.B) {
			s, base := benchServer(b, !sync)
			ctx := context.Background()
			for range b.N {
				if _, err := s.CreateTaskJSON(ctx, NewTaskID(), benchDef()); err != nil {
					b.Fatal(err)
				}
			}
			worker := (&taskcluster.Client{RootURL: base, Credentials: taskcluster.StaticCredentials(taskcluster.Credentials{ClientID: "w", AccessToken: "t"})}).Queue()
			b.ResetTimer()
			for range b.N {
				res, err := worker.ClaimWork(ctx, testQueue, &taskcluster.ClaimWorkRequest{WorkerGroup: "g", WorkerID: "w", Tasks: 1})
				if err != nil || len(res.Tasks) != 1 {
					b.Fatalf("claimWork: %v", err)
				}
				c := res.Tasks[0]
				tq := (&taskcluster.Client{RootURL: base, Credentials: taskcluster.StaticCredentials(c.Credentials)}).Queue()
				if _, err := tq.ReclaimTask(ctx, c.Status.TaskID, c.RunID); err != nil {
					b.Fatal(err)
				}
				if _, err := tq.CreateArtifact(ctx, c.Status.TaskID, c.RunID, "public/x", taskcluster.ErrorArtifact("file-missing-on-worker", "m", time.Now().Add(time.Hour))); err != nil {
					b.Fatal(err)
				}
				if _, err := tq.ReportCompleted(ctx, c.Status.TaskID, c.RunID); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tasks/s")
		})
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// BenchmarkArtifactUpload measures storing an s3 artifact through its
// putUrl (size per op from LOCALQUEUE_BENCH_BYTES, default 256 MiB; use
// 1073741824 for 1 GiB) and reports the process's peak RSS, which must not
// grow with the size.
func BenchmarkArtifactUpload(b *testing.B) {
	size := int64(256 << 20)
	if v := os.Getenv("LOCALQUEUE_BENCH_BYTES"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			b.Fatal(err)
		}
		size = n
	}
	s, base := benchServer(b, true)
	ctx := context.Background()
	id := NewTaskID()
	if _, err := s.CreateTaskJSON(ctx, id, benchDef()); err != nil {
		b.Fatal(err)
	}
	claims, err := s.ClaimWork(ctx, testQueue, "g", "w", 1)
	if err != nil || len(claims) != 1 {
		b.Fatal(err)
	}
	tq := (&taskcluster.Client{RootURL: base, Credentials: taskcluster.StaticCredentials(claims[0].Credentials)}).Queue()
	b.SetBytes(size)
	b.ResetTimer()
	for i := range b.N {
		res, err := tq.CreateArtifact(ctx, id, 0, "public/big-"+strconv.Itoa(i), taskcluster.S3Artifact("application/octet-stream", size, time.Now().Add(time.Hour)))
		if err != nil {
			b.Fatal(err)
		}
		req, err := http.NewRequest("PUT", res.PutURL, io.LimitReader(zeroReader{}, size))
		if err != nil {
			b.Fatal(err)
		}
		req.ContentLength = size
		req.Header.Set("Content-Type", "application/octet-stream")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("PUT: %d", resp.StatusCode)
		}
		b.StopTimer()
		if p, err := s.ArtifactPath(id, 0, "public/big-"+strconv.Itoa(i)); err == nil {
			_ = os.Remove(p) // keep the disk use to one artifact
		}
		b.StartTimer()
	}
	b.StopTimer()
	if hwm := peakRSS(); hwm > 0 {
		b.ReportMetric(float64(hwm)/(1<<20), "peak-RSS-MiB")
	}
	http.DefaultClient.CloseIdleConnections()
}

// peakRSS returns VmHWM from /proc/self/status in bytes, or 0.
func peakRSS() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
