package tcwire

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// servedTask is a task definition as the Queue serves it (task.json), every
// member present, retries 0 included.
const servedTask = `{"provisionerId":"proj","workerType":"linux","taskQueueId":"proj/linux","schedulerId":"-",` +
	`"projectId":"none","taskGroupId":"fN1SbArXTPSVFNUvaOlinQ","dependencies":[],"requires":"all-completed",` +
	`"routes":[],"priority":"lowest","retries":0,"created":"2029-12-31T23:00:00.000Z",` +
	`"deadline":"2030-01-01T00:00:00.000Z","expires":"2031-01-01T00:00:00.000Z","scopes":[],` +
	`"payload":{"command":[["/bin/true"]],"maxRunTime":60},` +
	`"metadata":{"name":"t","description":"d","owner":"me@example.com","source":"https://example.com/x"},` +
	`"tags":{},"extra":{}}`

func TestTaskDefinitionRoundTrips(t *testing.T) {
	var d TaskDefinition
	if err := json.Unmarshal([]byte(servedTask), &d); err != nil {
		t.Fatal(err)
	}
	if d.Retries == nil || *d.Retries != 0 {
		t.Fatalf("retries: %v", d.Retries)
	}
	got, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	if !jsonEqual(t, got, []byte(servedTask)) {
		t.Errorf("served definition does not round-trip:\n got %s\nwant %s", got, servedTask)
	}
}

func TestTaskDefinitionLeavesDefaultsToTheQueue(t *testing.T) {
	ts := time.Date(2030, 1, 2, 3, 4, 5, 678999999, time.FixedZone("x", 3600))
	d := TaskDefinition{
		TaskQueueID: "proj/linux",
		Created:     ts,
		Deadline:    ts.Add(time.Hour),
		Payload:     json.RawMessage(`{}`),
		Metadata:    TaskMetadata{Name: "n", Description: "d", Owner: "o@example.com", Source: "https://example.com"},
	}
	got, err := json.Marshal(&d)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"taskQueueId":"proj/linux","created":"2030-01-02T02:04:05.678Z","deadline":"2030-01-02T03:04:05.678Z",` +
		`"payload":{},"metadata":{"name":"n","description":"d","owner":"o@example.com","source":"https://example.com"}}`
	if !jsonEqual(t, got, []byte(want)) {
		t.Errorf("created definition:\n got %s\nwant %s", got, want)
	}
	zero := 0
	d.Retries = &zero
	got, _ = json.Marshal(d)
	if !bytes.Contains(got, []byte(`"retries":0`)) {
		t.Errorf("an explicit retries 0 is left out: %s", got)
	}
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatal(err)
	}
	ax, _ := json.Marshal(x)
	by, _ := json.Marshal(y)
	return bytes.Equal(ax, by)
}
