package engines_test

import (
	"bytes"
	"log/slog"
	"testing"

	"github.com/workergen/workergen/engines"
)

// TestHandlesLogValue: a log line shows the handles a run has by their
// JSON names, and leaves out empty ones.
func TestHandlesLogValue(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}}))
	log.Info("recovering", "handles", engines.Handles{Cgroup: "/sys/fs/cgroup/w/workergen-T-0-ab", ProcessGroups: []int{41, 42}})
	want := "level=INFO msg=recovering handles.cgroup=/sys/fs/cgroup/w/workergen-T-0-ab handles.processGroups=\"[41 42]\"\n"
	if got := buf.String(); got != want {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
}
