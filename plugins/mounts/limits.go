package mounts

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// errTooBig is wrapped (with ErrBadContent) by the error of an extraction
// or decompression that would write more than its budget allows.
var errTooBig = errors.New("extracted content too large")

// budget bounds the bytes one mount's extraction or decompression writes,
// counted as they are written, so that a decompression bomb (a 1 MB zip
// that expands to 1 GB) is refused before the disk fills. A nil *budget
// means no bound.
type budget struct {
	limit int64  // bytes
	why   string // where the limit comes from, for the error
	used  int64
}

// extractBudget is the budget of one mount placed in dir: the config's
// maxExtractedSize and the free space of dir's file system, whichever is
// smaller; nil when neither applies.
func (p *plugin) extractBudget(dir string) *budget {
	var b *budget
	if max := p.cfg.MaxExtractedSize; max > 0 {
		b = &budget{limit: max, why: "the mounts config's maxExtractedSize"}
	}
	if free, err := p.freeBytes(dir); err == nil && free >= 0 && (b == nil || free < b.limit) {
		b = &budget{limit: free, why: "the free space on the task directory's file system"}
	}
	return b
}

// writer returns w counting into b: a write that would pass the limit
// fails (nothing of it is written) with an error wrapping ErrBadContent
// and errTooBig.
func (b *budget) writer(w io.Writer) io.Writer {
	if b == nil {
		return w
	}
	return budgetWriter{w: w, b: b}
}

type budgetWriter struct {
	w io.Writer
	b *budget
}

func (bw budgetWriter) Write(p []byte) (int, error) {
	if bw.b.used+int64(len(p)) > bw.b.limit {
		return 0, fmt.Errorf("%w: %w: the content expands to more than %d bytes, the limit set by %s; refused before the disk fills (a decompression bomb?)",
			ErrBadContent, errTooBig, bw.b.limit, bw.b.why)
	}
	n, err := bw.w.Write(p)
	bw.b.used += int64(n)
	return n, err
}

// removePartialDownloads deletes the partial downloads (.download-*) an
// earlier process of the worker left in the downloads directory when it
// was killed mid-fetch: when the plugin is made, no fetch of this process
// runs yet. The collector skips them as in-flight otherwise.
func (p *plugin) removePartialDownloads() {
	matches, _ := filepath.Glob(filepath.Join(p.downloadsDir, ".download-*"))
	for _, m := range matches {
		if err := os.Remove(m); err != nil {
			p.logger.Warn("mounts: removing a partial download left by an earlier worker process", "file", m, "error", err)
			continue
		}
		p.logger.Warn("mounts: removed a partial download left by an earlier worker process", "file", m)
	}
}
