package runnertest

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestViolationsAreRecorded(t *testing.T) {
	fromWorker := strings.NewReader(strings.Join([]string{
		`~{"type":"log","body":{}}`,
		`text before hello`,
		`~{"type":"hello","capabilities":["shutdown","teleport"]}`,
		`~{"type":"log","body":{}}`,
		`~{"type":"new-credentials","client-id":"a","access-token":"b"}`,
		`~{"type":"hello","capabilities":[]}`,
		`~{"type":"shutdown"}`,
		`~{"type":"something-new"}`,
		`~{broken`,
	}, "\n") + "\n")
	var toWorker strings.Builder
	seen := []string{}
	r, err := New(fromWorker, &toWorker, Options{Capabilities: []string{"log", "shutdown"}, OnMessage: func(m Message) { seen = append(seen, m.Type()) }})
	require.NoError(t, err)
	require.NoError(t, r.Wait())
	assert.Equal(t, "~{\"capabilities\":[\"log\",\"shutdown\"],\"type\":\"welcome\"}\n", toWorker.String())
	v := r.Violations()
	require.Len(t, v, 5, v)
	assert.Contains(t, v[0], "message before hello")
	assert.Contains(t, v[1], `"teleport"`)
	assert.Contains(t, v[2], `capability "log" was not agreed`)
	assert.Contains(t, v[3], "runner's message")
	assert.Contains(t, v[4], "second hello")
	assert.Equal(t, []string{"text before hello", "~{broken"}, r.Output())
	assert.Equal(t, []string{"log", "new-credentials", "shutdown", "something-new"}, seen)
	assert.True(t, r.Capable("shutdown"))
	assert.Error(t, r.GracefulTermination(true), "not agreed")
	_, err = r.WaitFor(context.Background(), "error-report")
	assert.ErrorIs(t, err, errEnded)
}

func TestHelloTimesOut(t *testing.T) {
	pr, pw := io.Pipe()
	defer pw.Close()
	r, err := New(pr, io.Discard, Options{})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err = r.Hello(ctx)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
}
