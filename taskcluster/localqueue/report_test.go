package localqueue

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/workergen/workergen/task"
	"github.com/workergen/workergen/taskcluster/tcwire"
)

func TestResolutionsTable(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	// CreateTask takes the task package's Definition, tcwire's (zero
	// expires and absent optional fields get the Queue's defaults).
	now := h.clock.Now()
	def := task.Definition{
		TaskQueueID: testQueue,
		Created:     now,
		Deadline:    now.Add(time.Hour),
		Payload:     json.RawMessage(`{"command":[["true"]]}`),
		Metadata:    task.Metadata{Name: "hello", Description: "d", Owner: "o@example.com", Source: "https://example.com"},
	}
	id := NewTaskID()
	st, err := h.s.CreateTask(ctx, id, &def)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Expires.Equal(def.Deadline.Add(365*24*time.Hour)) || st.SchedulerID != "-" || st.ProjectID != "none" || st.TaskGroupID != id {
		t.Fatalf("defaults: %+v", st)
	}
	pending := NewTaskID()
	def.Metadata.Name = "waits"
	if _, err := h.s.CreateTask(ctx, pending, &def); err != nil {
		t.Fatal(err)
	}

	c := h.claim()
	tc := h.clientFor(c.Credentials)
	exp := h.clock.Now().Add(time.Hour).Format(time.RFC3339)
	for name, data := range map[string]string{LogArtifactName: "the log\n", "public/report.json": `{"ok":true}`} {
		r := h.createArtifact(tc, id, 0, name, map[string]any{"storageType": "s3", "contentType": "text/plain", "expires": exp}, 200)
		var res struct{ PutURL string }
		r.decode(t, &res)
		h.put(res.PutURL, "text/plain", []byte(data))
	}
	h.createArtifact(tc, id, 0, LiveLogArtifactName, map[string]any{"storageType": "link", "expires": exp, "artifact": LogArtifactName}, 200)
	h.createArtifact(tc, id, 0, "public/missing", map[string]any{"storageType": "error", "expires": exp, "reason": "file-missing-on-worker", "message": "m"}, 200)
	tc.call("POST", "queue", runPath(id, 0, "/failed"), nil, "", "", 200)

	sts, err := h.s.WaitResolved(ctx, time.Millisecond, id)
	if err != nil || sts[0].State != tcwire.StateFailed {
		t.Fatalf("WaitResolved: %v %v", sts, err)
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := h.s.WaitResolved(short, time.Millisecond, pending); err == nil {
		t.Fatal("WaitResolved returned for a pending task")
	}

	rs, err := h.s.Resolutions()
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 {
		t.Fatalf("resolutions: %+v", rs)
	}
	var r Resolution
	for _, x := range rs {
		if x.TaskID == id {
			r = x
		}
	}
	if r.State != tcwire.StateFailed || r.Reason != tcwire.ReasonFailed || !strings.HasPrefix(r.Log, h.dir) ||
		len(r.Artifacts) != 2 || r.Artifacts["public/missing"] != "error: file-missing-on-worker" {
		t.Fatalf("resolution: %+v", r)
	}
	var b strings.Builder
	if err := WriteTable(&b, rs); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"TASK ID", "hello", "failed", "waits", "pending", "public/report.json", r.Log} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	t.Logf("\n%s", out)

	wc := WorkerClient("w", testQueue)
	if len(wc.AccessToken) != 44 || wc.Scopes[0] != "queue:claim-work:"+testQueue {
		t.Fatalf("WorkerClient: %+v", wc)
	}
}

// TestWaitResolvedWakesOnResolution: a waiter with an hour-long polling
// interval still returns as soon as the task resolves (it waits on the
// Queue's change notification, not on the interval).
func TestWaitResolvedWakesOnResolution(t *testing.T) {
	h := newHarness(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	now := h.clock.Now()
	def := task.Definition{
		TaskQueueID: testQueue, Created: now, Deadline: now.Add(time.Hour),
		Payload:  json.RawMessage(`{"command":[["true"]]}`),
		Metadata: task.Metadata{Name: "wake", Description: "d", Owner: "o@example.com", Source: "https://example.com"},
	}
	id := NewTaskID()
	if _, err := h.s.CreateTask(ctx, id, &def); err != nil {
		t.Fatal(err)
	}
	type result struct {
		sts []TaskStatus
		err error
	}
	done := make(chan result, 1)
	go func() {
		sts, err := h.s.WaitResolved(ctx, time.Hour, id)
		done <- result{sts, err}
	}()
	c := h.claim()
	h.clientFor(c.Credentials).call("POST", "queue", runPath(id, 0, "/completed"), nil, "", "", 200)
	r := <-done
	if r.err != nil || r.sts[0].State != tcwire.StateCompleted {
		t.Fatalf("WaitResolved: %+v %v", r.sts, r.err)
	}
	if _, err := h.s.WaitResolved(ctx, time.Hour, "nosuchtaskid0000000000"); err == nil {
		t.Fatal("WaitResolved of an unknown taskId did not fail")
	}
}
