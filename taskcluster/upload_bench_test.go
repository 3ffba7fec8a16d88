//go:build linux

package taskcluster

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// BenchmarkPut streams a sparse file to a local server that discards it,
// reporting throughput (MB/s) and the process's peak RSS, which must not
// grow with the size:
//
//	go test -run '^$' -bench Put -benchtime 1x ./taskcluster/
func BenchmarkPut(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	defer srv.Close()
	c := &Client{RootURL: srv.URL} // the default HTTP client, as in production
	defer c.CloseIdleConnections()
	for _, size := range []int64{16 << 20, 1 << 30} {
		b.Run(fmt.Sprintf("%dMiB", size>>20), func(b *testing.B) {
			p := filepath.Join(b.TempDir(), "sparse")
			f, err := os.Create(p)
			if err != nil {
				b.Fatal(err)
			}
			if err := f.Truncate(size); err != nil {
				b.Fatal(err)
			}
			f.Close()
			open := func() (io.ReadCloser, error) { return os.Open(p) }
			b.SetBytes(size)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if err := c.Put(context.Background(), srv.URL+"/put", open, PutOptions{ContentLength: size, ContentType: "application/octet-stream"}); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			var ru syscall.Rusage
			if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
				b.ReportMetric(float64(ru.Maxrss)/1024, "peak-rss-MiB")
			}
		})
	}
}
