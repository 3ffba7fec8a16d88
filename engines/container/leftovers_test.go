package container

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/moby/moby/client"

	"github.com/workergen/workergen/engines"
)

func TestLeftoversRemovedAtStartup(t *testing.T) {
	e := newTestEngine(t, nil)
	scope := "docker-worker:cache:*"
	// A task with a cache, "crashed": never disposed.
	r := newRun(t, e, cachePayload(t, "echo data > /cache/f; sleep 600"), scope)
	ctx := testCtx(t)
	b, err := e.NewSandboxBuilder(ctx, r.tc)
	if err != nil {
		t.Fatal(err)
	}
	s, err := b.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sb := s.(*sandbox)
	vol := sb.caches[0].volume
	in, err := e.cli.ContainerInspect(ctx, sb.id, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{LabelManaged: "true", LabelWorkerID: e.worker.WorkerID, LabelTaskID: r.tc.TaskID, LabelRunID: "0", LabelWorkerPoolID: e.worker.WorkerPoolID} {
		if got := in.Container.Config.Labels[k]; got != want {
			t.Errorf("label %s = %q, want %q", k, got, want)
		}
	}

	// Another worker on the same daemon leaves it alone...
	other := newTestEngine(t, nil)
	if _, err := other.cli.ContainerInspect(ctx, sb.id, client.ContainerInspectOptions{}); err != nil {
		t.Fatalf("another worker's start-up removed this worker's container: %v", err)
	}
	// ...the same worker restarted removes it and purges its cache.
	raw, _ := json.Marshal(map[string]string{"socket": podmanSocket(t)})
	again, err := NewEngine(engines.Options{Config: raw, Worker: e.worker, Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if _, err := e.cli.ContainerInspect(ctx, sb.id, client.ContainerInspectOptions{}); err == nil || !strings.Contains(strings.ToLower(err.Error()), "no such") {
		t.Fatalf("leftover container still there: %v", err)
	}
	if _, err := e.cli.VolumeInspect(context.Background(), vol, client.VolumeInspectOptions{}); err == nil {
		t.Fatalf("cache volume %s of the crashed task not purged", vol)
	}
	if _, err := s.Wait(ctx); err == nil {
		t.Log("Wait returned a result for the removed container")
	}
}
