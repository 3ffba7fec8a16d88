package task_test

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/workergen/workergen/task"
)

// BenchmarkLogWrite is the task log's share of the log path: 256 KiB
// writes (the native engine's read size) to the backing log file, with
// and without a live-log tee (a notification, as plugins/tasklog's
// stream is). It must not allocate per write:
//
//	go test -run '^$' -bench LogWrite -benchmem ./task/
func BenchmarkLogWrite(b *testing.B) {
	chunk := make([]byte, 256<<10)
	for i := range chunk {
		chunk[i] = byte('a' + i%26)
	}
	for _, tee := range []bool{false, true} {
		name := "file"
		if tee {
			name = "file+tee"
		}
		b.Run(name, func(b *testing.B) {
			f, err := os.Create(filepath.Join(b.TempDir(), "live_backing.log"))
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			l := task.NewLog(f)
			if tee {
				defer l.Tee(io.Discard)()
			}
			b.SetBytes(int64(len(chunk)))
			b.ReportAllocs()
			written := 0
			for b.Loop() {
				if _, err := l.Write(chunk); err != nil {
					b.Fatal(err)
				}
				if written += len(chunk); written >= 256<<20 { // keep the file bounded
					written = 0
					b.StopTimer()
					_ = f.Truncate(0)
					_, _ = f.Seek(0, 0)
					b.StartTimer()
				}
			}
		})
	}
}
