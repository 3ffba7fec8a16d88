package mounts_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/workergen/workergen/plugins"
	"github.com/workergen/workergen/plugins/plugintest"
	"github.com/workergen/workergen/task"
)

// BenchmarkReadOnlyDirectoryTarGz mounts a tar.gz of 500 files of 8 KiB
// (4 MB) that an earlier run downloaded: SHA-256 check of the download,
// gunzip and extraction into a fresh task directory.
func BenchmarkReadOnlyDirectoryTarGz(b *testing.B) {
	var entries []entry
	for i := range 500 {
		entries = append(entries, entry{name: fmt.Sprintf("d%d/f%d.txt", i%10, i), body: strings.Repeat(fmt.Sprint(i), 8192)[:8192]})
	}
	srv := newServer(b, map[string][]byte{"/a.tar.gz": compress(b, "gz", makeTar(b, entries))})
	p := newPlugin(b)
	payload := map[string]any{"mounts": []any{map[string]any{"directory": "d", "format": "tar.gz", "content": map[string]any{"url": srv.URL + "/a.tar.gz"}}}}
	b.SetBytes(500 * 8192)
	for b.Loop() {
		res := plugintest.Run(b, plugintest.Case{Plugins: []plugins.Plugin{p}, Payload: payload})
		if res.Resolution.State != task.Completed {
			b.Fatal(res.Log)
		}
	}
}
