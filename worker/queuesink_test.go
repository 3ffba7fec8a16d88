package worker

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/task"
	"github.com/workergen/workergen/taskcluster"
)

// TestQueueSinkBytesAndEncodingsReadBack uploads compressible and
// incompressible files, gzip and identity, small (compressed in memory)
// and large (compressed through a temporary file), to s3 and object
// storage of the embedded Queue, and reads the stored bytes and encodings
// back.
func TestQueueSinkBytesAndEncodingsReadBack(t *testing.T) {
	random := make([]byte, 3<<20)
	_, _ = rand.NewChaCha8([32]byte{1}).Read(random)
	var text bytes.Buffer
	for i := 0; text.Len() < 8<<20; i++ {
		text.WriteString("2026-12-06 INFO step ")
		text.WriteString(strings.Repeat("x", i%17))
		text.WriteString(" compiling\n")
	}
	dir := t.TempDir()
	files := map[string][]byte{"random.bin": random, "text.log": text.Bytes(), "small.txt": text.Bytes()[:4000], "empty.txt": nil}
	for name, b := range files {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), b, 0o644))
	}
	cases := []struct{ file, encoding string }{
		{"random.bin", task.EncodingIdentity},
		{"random.bin", task.EncodingGzip}, // as a payload may ask
		{"text.log", task.EncodingGzip},
		{"text.log", task.EncodingIdentity},
		{"small.txt", task.EncodingGzip},
		{"empty.txt", task.EncodingGzip},
	}
	for _, storage := range []string{taskcluster.StorageS3, taskcluster.StorageObject} {
		t.Run(storage, func(t *testing.T) {
			env := newQueueEnv(t, time.Hour)
			id := env.createTask(`{}`, 0)
			resp, err := env.client.Queue().ClaimWork(context.Background(), testPool, &taskcluster.ClaimWorkRequest{WorkerGroup: "test-group", WorkerID: "w1", Tasks: 1})
			require.NoError(t, err)
			require.Len(t, resp.Tasks, 1)
			claim := resp.Tasks[0]
			tcl := *env.client
			tcl.Credentials = taskcluster.StaticCredentials(claim.Credentials)
			runDir := t.TempDir()
			sink := &queueSink{queue: tcl.Queue(), taskID: id, runID: claim.RunID, storageType: storage, tmpDir: runDir}
			for _, c := range cases {
				path := filepath.Join(dir, c.file)
				err := sink.Publish(context.Background(), task.Artifact{
					Name: "public/" + c.encoding + "/" + c.file, Kind: task.ArtifactFile, Expires: claim.Task.Expires,
					ContentType: "application/octet-stream", ContentEncoding: c.encoding, Size: int64(len(files[c.file])),
					Path: path, Open: func() (io.ReadCloser, error) { return os.Open(path) },
				})
				require.NoError(t, err, c)
			}
			arts, err := env.server.Artifacts(id, claim.RunID)
			require.NoError(t, err)
			got := map[string][2]string{}
			for _, a := range arts {
				content := a.Content
				if a.ContentEncoding == task.EncodingGzip {
					zr, err := gzip.NewReader(bytes.NewReader(content))
					require.NoError(t, err, a.Name)
					content, err = io.ReadAll(zr)
					require.NoError(t, err, a.Name)
				}
				got[a.Name] = [2]string{a.ContentEncoding, string(content)}
			}
			for _, c := range cases {
				name := "public/" + c.encoding + "/" + c.file
				want := c.encoding
				if storage == taskcluster.StorageObject || want == task.EncodingIdentity {
					want = "" // stored as uploaded, unencoded
				}
				require.Contains(t, got, name)
				assert.Equal(t, want, strings.TrimPrefix(got[name][0], "identity"), name)
				assert.True(t, got[name][1] == string(files[c.file]), "%s: content differs", name)
			}
			left, err := os.ReadDir(runDir)
			require.NoError(t, err)
			assert.Empty(t, left, "temporary compressed copies are removed")
		})
	}
}
