package container

import (
	"strings"
	"testing"

	"github.com/moby/moby/client"

	"github.com/workergen/workergen/engines"
)

// TestReapRemovesContainerFromHandles: the builder reports the container
// ID once it is created, and Reap, given those handles as a later worker
// process would be, removes the running container; reaping again is fine.
func TestReapRemovesContainerFromHandles(t *testing.T) {
	e := newTestEngine(t, nil)
	r := newRun(t, e, payload(t, "sh", "-c", "sleep 600"))
	ctx := testCtx(t)
	b, err := e.NewSandboxBuilder(ctx, r.tc)
	if err != nil {
		t.Fatal(err)
	}
	var got engines.Handles
	b.(engines.HandleReporter).ReportHandles(func(h engines.Handles) { got = h })
	s, err := b.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got.Container == "" || got.Container != s.(*sandbox).id {
		t.Fatalf("reported handles %+v, container %s", got, s.(*sandbox).id)
	}
	if err := e.Reap(ctx, got); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cli.ContainerInspect(ctx, got.Container, client.ContainerInspectOptions{}); err == nil || !strings.Contains(strings.ToLower(err.Error()), "no such") {
		t.Fatalf("container still there after Reap: %v", err)
	}
	if err := e.Reap(ctx, got); err != nil {
		t.Fatalf("second Reap: %v", err)
	}
	if rs, err := s.Wait(ctx); err == nil {
		_ = rs.Dispose()
	}
}
