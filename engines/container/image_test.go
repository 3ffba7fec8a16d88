package container

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/moby/moby/client"
	"github.com/pierrec/lz4/v4"

	"github.com/workergen/workergen/task"
	"github.com/workergen/workergen/taskcluster/tcwire"
)

func wantException(t *testing.T, err error, reason task.Reason, contains ...string) {
	t.Helper()
	var ee *task.ExceptionError
	if !errors.As(err, &ee) || ee.Reason != reason {
		t.Fatalf("error = %v, want exception %s", err, reason)
	}
	for _, c := range contains {
		if !strings.Contains(err.Error(), c) {
			t.Errorf("error %q does not mention %q", err, c)
		}
	}
}

func TestImagePullFromRegistry(t *testing.T) {
	e := newTestEngine(t, map[string]any{"pullPolicy": "always"})
	r := newRun(t, e, payload(t, "true"))
	res := runTask(t, e, r, nil)
	if !res.Success() {
		t.Fatalf("task failed; log:\n%s", r.log.String())
	}
	if !strings.Contains(r.log.String(), "pulled in") {
		t.Fatalf("image not pulled; log:\n%s", r.log.String())
	}
	// The object form names the same image.
	p := payload(t, "true")
	p["image"] = map[string]string{"type": "docker-image", "name": testImage(t)}
	if res := runTask(t, e, newRun(t, e, p), nil); !res.Success() {
		t.Fatal("docker-image object form failed")
	}
}

func TestImagePullErrors(t *testing.T) {
	e := newTestEngine(t, map[string]any{"pullTimeout": 60})
	reg := testEnv("WORKERGEN_TEST_REGISTRY")
	if reg == "" {
		reg = "localhost:5000"
	}
	for _, tc := range []struct {
		image  string
		reason task.Reason
	}{
		{reg + "/workergen/no-such-image:latest", task.ReasonMalformedPayload},
		{testImage(t) + "-no-such-tag", task.ReasonMalformedPayload},
		{"127.0.0.1:1/nothing/listens:here", task.ReasonResourceUnavailable},
		{"Not A Valid Reference", task.ReasonMalformedPayload},
	} {
		t.Run(tc.image, func(t *testing.T) {
			p := payload(t, "true")
			p["image"] = tc.image
			r := newRun(t, e, p)
			_, err := e.NewSandboxBuilder(testCtx(t), r.tc)
			if tc.reason == task.ReasonMalformedPayload {
				wantException(t, err, tc.reason, "payload.image")
			} else {
				wantException(t, err, tc.reason, "pulling image")
			}
		})
	}
}

// fakeFetcher serves image archives from memory.
type fakeFetcher struct {
	mu        sync.Mutex
	artifacts map[string][]byte // taskId/path -> content
	index     map[string]string // namespace -> taskId
	fetches   int
}

func (f *fakeFetcher) FindTask(_ context.Context, ns string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id, ok := f.index[ns]
	if !ok {
		return "", fmt.Errorf("namespace %s: %w", ns, tcwire.ErrNotFound)
	}
	return id, nil
}

func (f *fakeFetcher) OpenLatestArtifact(_ context.Context, taskID, name string) (io.ReadCloser, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.artifacts[taskID+"/"+name]
	if !ok {
		return nil, fmt.Errorf("artifact %s of %s: %w", name, taskID, tcwire.ErrNotFound)
	}
	f.fetches++
	return io.NopCloser(bytes.NewReader(b)), nil
}

// savedImage returns `docker save` of the test image.
func savedImage(t *testing.T, e *Engine) []byte {
	t.Helper()
	ctx := testCtx(t)
	if _, err := e.images.resolveRef(ctx, newRun(t, e, payload(t)).tc, testImage(t)); err != nil {
		t.Fatal(err)
	}
	rc, err := e.cli.ImageSave(ctx, []string{testImage(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestTaskImage(t *testing.T) {
	f := &fakeFetcher{artifacts: map[string][]byte{}, index: map[string]string{}}
	e := newTestEngine(t, nil, WithImageQueue(f))
	plain := savedImage(t, e)
	var gz, zs, l4 bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(plain)
	zw.Close()
	zsw, _ := zstd.NewWriter(&zs)
	zsw.Write(plain)
	zsw.Close()
	lw := lz4.NewWriter(&l4)
	lw.Write(plain)
	lw.Close()
	producer := uniqueID("ImageTask")
	f.artifacts[producer+"/public/image.tar"] = plain
	f.artifacts[producer+"/public/image.tar.gz"] = gz.Bytes()
	f.artifacts[producer+"/public/image.tar.zst"] = zs.Bytes()
	f.artifacts[producer+"/public/image.tar.lz4"] = l4.Bytes()
	f.artifacts[producer+"/public/garbage.tar"] = []byte("this is not an image archive")
	f.index["project.images.busybox.latest"] = producer
	t.Cleanup(func() {
		for _, p := range []string{"public/image.tar", "public/image.tar.gz", "public/image.tar.zst", "public/image.tar.lz4"} {
			e.cli.ImageRemove(context.Background(), taskImageTag(producer, p), client.ImageRemoveOptions{})
		}
	})

	for _, path := range []string{"public/image.tar", "public/image.tar.gz", "public/image.tar.zst", "public/image.tar.lz4"} {
		t.Run(path, func(t *testing.T) {
			p := payload(t, "sh", "-c", "echo from-task-image")
			p["image"] = map[string]string{"type": "task-image", "taskId": producer, "path": path}
			r := newRun(t, e, p)
			res := runTask(t, e, r, nil)
			if !res.Success() || !strings.Contains(r.log.String(), "from-task-image") {
				t.Fatalf("task-image run failed; log:\n%s", r.log.String())
			}
		})
	}
	before := f.fetches
	p := payload(t, "true")
	p["image"] = map[string]string{"type": "indexed-image", "namespace": "project.images.busybox.latest", "path": "public/image.tar"}
	r := newRun(t, e, p)
	if res := runTask(t, e, r, nil); !res.Success() {
		t.Fatalf("indexed-image failed; log:\n%s", r.log.String())
	}
	if f.fetches != before {
		t.Errorf("an image already loaded was downloaded again")
	}

	for _, tc := range []struct {
		image  map[string]string
		reason task.Reason
	}{
		{map[string]string{"type": "task-image", "taskId": producer, "path": "public/missing.tar"}, task.ReasonMalformedPayload},
		{map[string]string{"type": "task-image", "taskId": producer, "path": "public/garbage.tar"}, task.ReasonMalformedPayload},
		{map[string]string{"type": "indexed-image", "namespace": "no.such.namespace", "path": "public/image.tar"}, task.ReasonMalformedPayload},
	} {
		p := payload(t, "true")
		p["image"] = tc.image
		_, err := e.NewSandboxBuilder(testCtx(t), newRun(t, e, p).tc)
		wantException(t, err, tc.reason, "payload.image")
	}
}

func TestTaskImageWithoutQueue(t *testing.T) {
	e := newTestEngine(t, nil)
	p := payload(t, "true")
	p["image"] = map[string]string{"type": "task-image", "taskId": "abc", "path": "public/image.tar"}
	_, err := e.NewSandboxBuilder(testCtx(t), newRun(t, e, p).tc)
	wantException(t, err, task.ReasonResourceUnavailable, "no Queue access")
}

// A look-up the task caused (missing namespace, task or artifact; an error
// artifact; a refusal for the task's scopes) is malformed-payload; anything
// else is the deployment's trouble.
func TestTaskAtFault(t *testing.T) {
	for _, tt := range []struct {
		status int
		want   bool
	}{{404, true}, {424, true}, {403, true}, {401, false}, {500, false}, {503, false}} {
		err := fmt.Errorf("looking up: %w", &tcwire.APIError{StatusCode: tt.status})
		if got := taskAtFault(err); got != tt.want {
			t.Errorf("taskAtFault(%d) = %v, want %v", tt.status, got, tt.want)
		}
	}
	if taskAtFault(errors.New("connection refused")) {
		t.Error("a network error is not the task's fault")
	}
}
