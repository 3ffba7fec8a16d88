package localqueue

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/workergen/workergen/taskcluster"
	"github.com/workergen/workergen/taskcluster/tcwire"
)

// tcClientFor returns the project's Taskcluster client pointed at the
// harness, signing with the harness clock.
func (h *harness) tcClient(creds func() *taskcluster.Credentials) *taskcluster.Client {
	return &taskcluster.Client{
		RootURL:        h.srv.URL,
		Credentials:    creds,
		Now:            h.clock.Now,
		MaxElapsedTime: 5 * time.Second,
		Logger:         slog.New(slog.DiscardHandler),
	}
}

func opener(data []byte) taskcluster.Opener {
	return func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }
}

// TestWorkerFlowWithClient runs a worker's whole conversation with the
// Queue through the project's taskcluster client: create, claim, reclaim
// with credential swap, s3 and object uploads (0 bytes, spaces and +),
// reference/link/error artifacts, resolution, then reads everything back.
func TestWorkerFlowWithClient(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	admin := h.tcClient(taskcluster.StaticCredentials(taskcluster.Credentials{ClientID: "admin", AccessToken: "admin-token"})).Queue()
	worker := h.tcClient(taskcluster.StaticCredentials(taskcluster.Credentials{ClientID: "worker", AccessToken: "worker-token"})).Queue()

	taskID := NewTaskID()
	retries := 1
	now := h.clock.Now()
	st, err := admin.CreateTask(ctx, taskID, &tcwire.TaskDefinition{
		TaskQueueID: testQueue,
		Retries:     &retries,
		Created:     now,
		Deadline:    now.Add(2 * time.Hour),
		Payload:     json.RawMessage(`{"command":[["true"]],"maxRunTime":30}`),
		Metadata:    tcwire.TaskMetadata{Name: "n", Description: "d", Owner: "o@example.com", Source: "https://example.com"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if st.Status.State != tcwire.StatePending || st.Status.RetriesLeft != 1 {
		t.Fatalf("createTask: %+v", st.Status)
	}
	if _, err := admin.CreateTask(ctx, taskID, &tcwire.TaskDefinition{TaskQueueID: testQueue, Created: now, Deadline: now.Add(time.Hour),
		Payload: json.RawMessage(`{}`), Metadata: tcwire.TaskMetadata{Name: "n", Description: "d", Owner: "o", Source: "https://x"}}); !errors.Is(err, taskcluster.ErrConflict) {
		t.Fatalf("createTask with another definition: %v", err)
	}

	claims, err := worker.ClaimWork(ctx, testQueue, &taskcluster.ClaimWorkRequest{WorkerGroup: testWorkerGroup, WorkerID: testWorkerID, Tasks: 8})
	if err != nil {
		t.Fatal(err)
	}
	if len(claims.Tasks) != 1 || claims.Tasks[0].Status.TaskID != taskID || claims.Tasks[0].Task.TaskQueueID != testQueue {
		t.Fatalf("claimWork: %+v", claims)
	}
	claim := claims.Tasks[0]
	creds := taskcluster.NewCredentialsHolder(claim.Credentials)
	tq := h.tcClient(creds.Get).Queue()

	for range 3 {
		h.clock.Advance(10 * time.Minute)
		rec, err := tq.ReclaimTask(ctx, taskID, claim.RunID)
		if err != nil {
			t.Fatal(err)
		}
		creds.Set(rec.Credentials)
	}
	expires := h.clock.Now().Add(24 * time.Hour)
	uploads := map[string][]byte{
		"public/empty.log":                   {},
		"public/dir/a name with spaces+plus": []byte("spaces + plus"),
		"public/logs/live_backing.log":       []byte(strings.Repeat("log line\n", 1000)),
	}
	for _, storage := range []string{taskcluster.StorageS3, taskcluster.StorageObject} {
		for name, data := range uploads {
			err := tq.UploadArtifact(ctx, taskID, claim.RunID, "public/"+storage+"/"+name, &taskcluster.ArtifactUpload{
				StorageType: storage, ContentType: "text/plain; charset=utf-8", ContentLength: int64(len(data)), Expires: expires, Open: opener(data),
			})
			if err != nil {
				t.Fatalf("%s %s: %v", storage, name, err)
			}
		}
	}
	if _, err := tq.CreateArtifact(ctx, taskID, claim.RunID, "public/logs/live.log", taskcluster.ReferenceArtifact("https://example.com/live", "text/plain", expires)); err != nil {
		t.Fatal(err)
	}
	if _, err := tq.CreateArtifact(ctx, taskID, claim.RunID, "public/logs/live.log", taskcluster.LinkArtifact("public/s3/public/logs/live_backing.log", "text/plain", expires)); err != nil {
		t.Fatal(err)
	}
	if _, err := tq.CreateArtifact(ctx, taskID, claim.RunID, "public/missing", taskcluster.ErrorArtifact("file-missing-on-worker", "not there", expires)); err != nil {
		t.Fatal(err)
	}
	if _, err := tq.ReportCompleted(ctx, taskID, claim.RunID); err != nil {
		t.Fatal(err)
	}
	if _, err := tq.ReclaimTask(ctx, taskID, claim.RunID); !errors.Is(err, taskcluster.ErrConflict) {
		t.Fatalf("reclaim after completion: %v", err)
	}

	// Read back through the client and the helpers.
	anon := h.tcClient(nil).Queue()
	list, err := anon.ListArtifacts(ctx, taskID, claim.RunID, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Artifacts) != 8 {
		t.Fatalf("listArtifacts: %d", len(list.Artifacts))
	}
	for _, storage := range []string{taskcluster.StorageS3, taskcluster.StorageObject} {
		for name, data := range uploads {
			res, err := anon.GetArtifact(ctx, taskID, claim.RunID, "public/"+storage+"/"+name)
			if err != nil {
				t.Fatal(err)
			}
			got := h.get(res.URL)
			if got.status != http.StatusOK || !bytes.Equal(got.body, data) {
				t.Fatalf("%s %s: %d, %d bytes", storage, name, got.status, len(got.body))
			}
		}
	}
	if res, err := anon.GetArtifact(ctx, taskID, claim.RunID, "public/logs/live.log"); err != nil || res.StorageType != "s3" {
		t.Fatalf("live.log link: %+v %v", res, err)
	}
	_, err = anon.GetArtifact(ctx, taskID, claim.RunID, "public/missing")
	if taskcluster.StatusCode(err) != http.StatusFailedDependency {
		t.Fatalf("error artifact: %v", err)
	}
	status, err := anon.Status(ctx, taskID)
	if err != nil || status.Status.State != tcwire.StateCompleted {
		t.Fatalf("status: %+v %v", status, err)
	}

	// Cancel mid-run: reclaim answers 409 through the client.
	id2 := h.createTask(nil)
	claims, err = worker.ClaimWork(ctx, testQueue, &taskcluster.ClaimWorkRequest{WorkerGroup: testWorkerGroup, WorkerID: testWorkerID, Tasks: 1})
	if err != nil || len(claims.Tasks) != 1 {
		t.Fatalf("claim: %v", err)
	}
	if _, err := h.s.Cancel(id2); err != nil {
		t.Fatal(err)
	}
	tq2 := h.tcClient(taskcluster.StaticCredentials(claims.Tasks[0].Credentials)).Queue()
	if _, err := tq2.ReclaimTask(ctx, id2, 0); !errors.Is(err, taskcluster.ErrConflict) {
		t.Fatalf("reclaim after cancel: %v", err)
	}
}
