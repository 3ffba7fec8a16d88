package container

import (
	"context"
	"strings"
	"testing"

	"github.com/moby/moby/client"

	"github.com/workergen/workergen/task"
)

func cachePayload(t *testing.T, script string) map[string]any {
	p := payload(t, "sh", "-c", script)
	p["cache"] = map[string]string{"test-cache/v1": "/cache"}
	return p
}

func TestCacheReusedAndPurged(t *testing.T) {
	e := newTestEngine(t, nil)
	scope := "docker-worker:cache:test-cache/*"
	write := cachePayload(t, "echo data > /cache/f")
	read := cachePayload(t, "cat /cache/f || echo empty-cache")

	res := runTask(t, e, newRun(t, e, write, scope), nil)
	if !res.Success() {
		t.Fatal("writer failed")
	}
	res.Dispose()
	r := newRun(t, e, read, scope)
	runTask(t, e, r, nil).Dispose()
	if !strings.Contains(r.log.String(), "data") || !strings.Contains(r.log.String(), "reusing volume") {
		t.Fatalf("cache not reused; log:\n%s", r.log.String())
	}

	// A run asking for purge (onExitStatus.purgeCaches) removes it.
	r = newRun(t, e, cachePayload(t, "exit 7"), scope)
	res = runTask(t, e, r, nil)
	r.tc.SetValue(task.PurgeCachesKey{}, true)
	if err := res.Dispose(); err != nil {
		t.Fatal(err)
	}
	r = newRun(t, e, read, scope)
	runTask(t, e, r, nil).Dispose()
	if !strings.Contains(r.log.String(), "empty-cache") {
		t.Fatalf("cache not purged; log:\n%s", r.log.String())
	}
	t.Cleanup(func() { purgeTestCaches(t, e) })
}

func TestCacheConcurrentRunsGetDistinctVolumes(t *testing.T) {
	e := newTestEngine(t, nil)
	t.Cleanup(func() { purgeTestCaches(t, e) })
	scope := "docker-worker:cache:test-cache/v1"
	ctx := testCtx(t)
	var vols []string
	for range 2 {
		r := newRun(t, e, cachePayload(t, "true"), scope)
		b, err := e.NewSandboxBuilder(ctx, r.tc)
		if err != nil {
			t.Fatal(err)
		}
		s, err := b.Start(ctx)
		if err != nil {
			t.Fatal(err)
		}
		vols = append(vols, s.(*sandbox).caches[0].volume)
		defer func() {
			res, err := s.Wait(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			res.Dispose()
		}()
	}
	if vols[0] == vols[1] {
		t.Fatalf("two running tasks share cache volume %s", vols[0])
	}
}

func TestCacheNeedsScope(t *testing.T) {
	e := newTestEngine(t, nil)
	_, err := e.NewSandboxBuilder(testCtx(t), newRun(t, e, cachePayload(t, "true"), "docker-worker:cache:other").tc)
	wantException(t, err, task.ReasonMalformedPayload, `payload.cache["test-cache/v1"]`, "docker-worker:cache:test-cache/v1")
}

func TestCachePurgedAfterKill(t *testing.T) {
	e := newTestEngine(t, nil)
	t.Cleanup(func() { purgeTestCaches(t, e) })
	scope := "docker-worker:cache:*"
	runTask(t, e, newRun(t, e, cachePayload(t, "echo data > /cache/f"), scope), nil).Dispose()
	r := newRun(t, e, cachePayload(t, "sleep 600"), scope)
	ctx := testCtx(t)
	b, err := e.NewSandboxBuilder(ctx, r.tc)
	if err != nil {
		t.Fatal(err)
	}
	s, err := b.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.Kill()
	res, err := s.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	res.Dispose()
	r = newRun(t, e, cachePayload(t, "cat /cache/f || echo empty-cache"), scope)
	runTask(t, e, r, nil)
	if !strings.Contains(r.log.String(), "empty-cache") {
		t.Fatalf("cache of a killed task not purged; log:\n%s", r.log.String())
	}
}

func purgeTestCaches(t *testing.T, e *Engine) {
	f := e.workerFilter()
	f.Add("label", LabelCache)
	list, err := e.cli.VolumeList(context.Background(), client.VolumeListOptions{Filters: f})
	if err != nil {
		t.Log(err)
		return
	}
	for _, v := range list.Items {
		e.cli.VolumeRemove(context.Background(), v.Name, client.VolumeRemoveOptions{Force: true})
	}
}
