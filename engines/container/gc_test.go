package container

import (
	"context"
	"testing"
)

func TestImageGCRemovesUnusedReferences(t *testing.T) {
	f := &fakeFetcher{artifacts: map[string][]byte{}, index: map[string]string{}}
	// Any free space is too little: every unused reference is collected.
	e := newTestEngine(t, map[string]any{"imageGC": map[string]any{"minFreeBytes": int64(1) << 60, "storageDir": "/"}}, WithImageQueue(f))
	producer := uniqueID("GCImageTask")
	f.artifacts[producer+"/public/image.tar"] = savedImage(t, e)
	p := payload(t, "true")
	p["image"] = map[string]string{"type": "task-image", "taskId": producer, "path": "public/image.tar"}
	r := newRun(t, e, p)
	ctx := context.Background()
	bl, err := e.NewSandboxBuilder(ctx, r.tc)
	if err != nil {
		t.Fatal(err)
	}
	tag := taskImageTag(producer, "public/image.tar")
	// In use: kept.
	e.images.collectGarbage(ctx, r.tc)
	if _, err := e.images.inspect(ctx, tag); err != nil {
		t.Fatalf("image in use was collected: %v", err)
	}
	bl.Discard()
	e.images.collectGarbage(ctx, r.tc)
	if _, err := e.images.inspect(ctx, tag); err == nil {
		t.Fatalf("unused task image %s not collected; log:\n%s", tag, r.log.String())
	}
	// The image itself stays while another reference (the registry test
	// image) names it.
	if _, err := e.images.inspect(ctx, testImage(t)); err != nil {
		t.Fatalf("image GC removed a reference it never used: %v", err)
	}
	// And a later task loads it again.
	if res := runTask(t, e, newRun(t, e, p), nil); !res.Success() {
		t.Fatal("task image not loaded again after GC")
	}
}
