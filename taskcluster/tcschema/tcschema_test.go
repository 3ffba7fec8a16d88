package tcschema

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestCompileAll compiles every upstream schema except the API reference
// meta-documents, proving the id mapping and $refs resolve.
func TestCompileAll(t *testing.T) {
	s := ForTest(t)
	n := 0
	err := filepath.WalkDir(s.dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".json") {
			return err
		}
		rel, _ := filepath.Rel(s.dir, p)
		if strings.HasPrefix(rel, "common") {
			return nil
		}
		_, err = s.Schema(filepath.ToSlash(rel))
		assert.NoError(t, err, rel)
		n++
		return nil
	})
	require.NoError(t, err)
	assert.Greater(t, n, 50)
}

func TestValidate(t *testing.T) {
	s := ForTest(t)
	require.NoError(t, s.Validate("/schemas/queue/v1/claim-work-request.json#",
		[]byte(`{"workerGroup":"g","workerId":"w","tasks":4}`)))
	err := s.Validate("queue/v1/claim-work-request.json", []byte(`{"workerGroup":"g","workerId":"w","tasks":"4"}`))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "/tasks")
	err = s.Validate("queue/v1/claim-work-request.json", []byte(`{"workerGroup":"g","workerId":"w","tasks":4,"extra":1}`))
	assert.Error(t, err, "additionalProperties false")

	// A $ref across files (task-credentials.json) and date-time formats.
	reclaim := map[string]any{
		"status": map[string]any{
			"taskId": "fN1SbArXTPSVFNUvaOlinQ", "provisionerId": "p", "workerType": "w", "taskQueueId": "p/w",
			"schedulerId": "-", "projectId": "none", "taskGroupId": "fN1SbArXTPSVFNUvaOlinQ", "deadline": "2026-01-01T00:00:00.000Z",
			"expires": "2026-01-02T00:00:00.000Z", "retriesLeft": 5, "state": "running", "runs": []any{},
		},
		"runId": 0, "workerGroup": "g", "workerId": "w", "takenUntil": "not a date",
		"credentials": map[string]any{"clientId": "c", "accessToken": "a", "certificate": "{}"},
	}
	err = s.ValidateValue("queue/v1/task-reclaim-response.json", reclaim)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "/takenUntil")
	reclaim["takenUntil"] = "2026-01-01T00:00:00.000Z"
	require.NoError(t, s.ValidateValue("queue/v1/task-reclaim-response.json", reclaim))

	// The worker-manager stand-ins constrain identifiers.
	require.NoError(t, s.Validate("worker-manager/v1/reregister-worker-request.json",
		[]byte(`{"workerPoolId":"proj/type","workerGroup":"g","workerId":"w","secret":"0123456789012345678901234567890123456789abcd"}`)))
	assert.Error(t, s.Validate("worker-manager/v1/reregister-worker-request.json",
		[]byte(`{"workerPoolId":"proj/Type","workerGroup":"g","workerId":"w","secret":"0123456789012345678901234567890123456789abcd"}`)))
}

func TestURL(t *testing.T) {
	want := base + "/schemas/queue/v1/task.json"
	for _, id := range []string{"/schemas/queue/v1/task.json#", "schemas/queue/v1/task.json", "queue/v1/task.json", "queue/v1/task"} {
		assert.Equal(t, want, URL(id), id)
	}
	_, err := ForTest(t).Schema("queue/v1/nope.json")
	assert.Error(t, err)
}
