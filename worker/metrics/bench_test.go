package metrics

import (
	"errors"
	"io"
	"testing"
	"time"
)

// BenchmarkRecordRun records what one claimed and resolved run does: a
// claimWork, running up and down, a resolution, two artifact uploads.
func BenchmarkRecordRun(b *testing.B) {
	r := New(Info{Version: "1", Profile: "p", Engine: "e"})
	b.ReportAllocs()
	for b.Loop() {
		r.ClaimWork(time.Millisecond, 1, 0, nil)
		done := r.TaskRunning()
		r.ArtifactUploaded("s3", 1000)
		r.ArtifactUploaded("s3", 20)
		r.TaskResolved("completed", "completed", 2*time.Second)
		done()
	}
}

// BenchmarkRecordFailure records a failed claimWork and reclaimTask.
func BenchmarkRecordFailure(b *testing.B) {
	r := New(Info{})
	err := errors.New("unavailable")
	b.ReportAllocs()
	for b.Loop() {
		r.ClaimWork(time.Second, 0, 503, err)
		r.ReclaimTask(time.Second, 503, err)
	}
}

// BenchmarkScrape writes the whole exposition once (what a scrape costs).
func BenchmarkScrape(b *testing.B) {
	r := New(Info{})
	b.ReportAllocs()
	for b.Loop() {
		r.WritePrometheus(io.Discard)
	}
}
