package interactive_test

// Integration: the linux-native and linux-podman workers run a task with
// features.interactive against the embedded Queue; the test reads the
// shell artifact as Taskcluster's UI does, opens the websocket it names
// and drives a shell in the running task with the UI's protocol (v2).

import (
	"context"
	"encoding/binary"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/plugins/interactive"
	"github.com/workergen/workergen/plugins/internal/workerit"
)

func cfg() map[string]any {
	return map[string]any{"interactive": map[string]any{"enable": true, "port": -1, "publicHostName": "127.0.0.1"}}
}

// socketURL waits for the run's shell artifact and returns the websocket
// URL in the UI link it redirects to.
func socketURL(t *testing.T, ctx context.Context, e *workerit.Env, taskID, artifact string) string {
	t.Helper()
	for {
		where, err := e.Client.Queue().GetArtifact(ctx, taskID, 0, artifact)
		if err == nil {
			u, err := url.Parse(where.URL)
			require.NoError(t, err)
			require.Equal(t, strings.TrimSuffix(e.URL, "/")+"/shell/", u.Scheme+"://"+u.Host+u.Path, "the UI's shell page")
			q := u.Query()
			require.Equal(t, "2", q.Get("v"))
			require.Equal(t, taskID, q.Get("taskId"))
			require.Equal(t, "0", q.Get("runId"))
			return q.Get("socketUrl")
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no %s artifact: %v", artifact, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func stdin(s string) []byte { return append([]byte{interactive.MsgStdin}, s...) }

func resize(rows, cols uint16) []byte {
	b := []byte{interactive.MsgResize, 0, 0, 0, 0}
	binary.LittleEndian.PutUint16(b[1:], rows)
	binary.LittleEndian.PutUint16(b[3:], cols)
	return b
}

// readUntil reads terminal output until it contains want.
func readUntil(t *testing.T, ctx context.Context, c *websocket.Conn, want string) string {
	t.Helper()
	var got strings.Builder
	for !strings.Contains(got.String(), want) {
		typ, data, err := c.Read(ctx)
		require.NoError(t, err, "waiting for %q; got so far %q", want, got.String())
		require.Equal(t, websocket.MessageBinary, typ)
		got.Write(data)
	}
	return got.String()
}

// drive runs the interactive scenario on a task that waits for doneFile.
func drive(t *testing.T, e *workerit.Env, payload map[string]any, artifact, doneFile string) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	id := e.CreateTask(payload)
	worked := make(chan error, 1)
	go func() { worked <- e.Work(ctx, 1) }()

	sock := socketURL(t, ctx, e, id, artifact)
	require.True(t, strings.HasPrefix(sock, "ws://127.0.0.1:"), sock)

	// A wrong secret is refused before any upgrade.
	bad := sock[:strings.LastIndex(sock, "/")+1] + "not-the-secret"
	_, resp, err := websocket.Dial(ctx, bad, nil)
	require.Error(t, err)
	require.NotNil(t, resp)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)

	c, _, err := websocket.Dial(ctx, sock, nil)
	require.NoError(t, err)
	defer c.CloseNow()
	require.NoError(t, c.Write(ctx, websocket.MessageBinary, resize(30, 100)))
	require.NoError(t, c.Write(ctx, websocket.MessageBinary, stdin("stty size; echo \"id=[$TASK_ID]\"\n")))
	out := readUntil(t, ctx, c, "id=["+id+"]")
	require.Contains(t, out, "30 100", "the resize reached the terminal")

	// Let the task end: the socket closes with it.
	require.NoError(t, c.Write(ctx, websocket.MessageBinary, stdin("touch "+doneFile+"\n")))
	for {
		_, _, err := c.Read(ctx)
		if err != nil {
			require.NoError(t, ctx.Err(), "the socket did not close when the task ended")
			st := websocket.CloseStatus(err)
			require.True(t, st == websocket.StatusNormalClosure || st == -1 && !errors.Is(err, context.DeadlineExceeded), "close: %v", err)
			break
		}
	}
	require.NoError(t, <-worked)
	require.Equal(t, "completed", e.Resolution(id), e.Log(id))
	log := e.Log(id)
	require.Contains(t, log, "interactive: shell session opened")
	require.Contains(t, log, "task finished waiting")

	// After the run the secret no longer opens anything.
	_, resp, err = websocket.Dial(ctx, sock, nil)
	require.Error(t, err)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
}

func TestInteractiveNative(t *testing.T) {
	e := workerit.New(t, workerit.Options{Profile: "linux-native", Plugins: cfg()})
	drive(t, e, map[string]any{
		"command":    [][]string{{"/bin/sh", "-c", "while [ ! -f done ]; do sleep 0.05; done; echo task finished waiting"}},
		"maxRunTime": 120,
		"features":   map[string]any{"interactive": true},
	}, interactive.GenericWorkerArtifact, "done")
}

func TestInteractiveContainer(t *testing.T) {
	e := workerit.New(t, workerit.Options{Profile: "linux-podman", Plugins: cfg(), Engine: map[string]any{"pullPolicy": "missing"}})
	drive(t, e, map[string]any{
		"image": e.Image, "maxRunTime": 120,
		"command":  []string{"sh", "-c", "while [ ! -f /tmp/done ]; do sleep 0.05; done; echo task finished waiting"},
		"features": map[string]any{"interactive": true},
	}, interactive.DockerWorkerArtifact, "/tmp/done")
}

// A task asking for a shell on a worker that does not offer them is
// malformed-payload naming the field.
func TestInteractiveDisabled(t *testing.T) {
	e := workerit.New(t, workerit.Options{Profile: "linux-native"})
	id := e.CreateTask(map[string]any{"command": [][]string{{"true"}}, "maxRunTime": 60, "features": map[string]any{"interactive": true}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, e.Work(ctx, 1))
	require.Equal(t, "exception/malformed-payload", e.Resolution(id))
	require.Contains(t, e.Log(id), "payload.features.interactive: this worker does not offer interactive shells")
}

// maxRunTime still applies: the task is killed with an open session,
// which ends with it.
func TestInteractiveMaxRunTime(t *testing.T) {
	e := workerit.New(t, workerit.Options{Profile: "linux-native", Plugins: cfg()})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	id := e.CreateTask(map[string]any{
		"command":    [][]string{{"/bin/sh", "-c", "sleep 600"}},
		"maxRunTime": 10, // seconds: time to open the session on a loaded machine
		"features":   map[string]any{"interactive": true},
	})
	worked := make(chan error, 1)
	go func() { worked <- e.Work(ctx, 1) }()
	c, _, err := websocket.Dial(ctx, socketURL(t, ctx, e, id, interactive.GenericWorkerArtifact), nil)
	require.NoError(t, err)
	defer c.CloseNow()
	require.NoError(t, c.Write(ctx, websocket.MessageBinary, stdin("echo ready-$((40+2))\n")))
	readUntil(t, ctx, c, "ready-42")
	for {
		if _, _, err := c.Read(ctx); err != nil {
			require.NoError(t, ctx.Err(), "the socket did not close when maxRunTime killed the task")
			break
		}
	}
	require.NoError(t, <-worked)
	require.Equal(t, "failed", e.Resolution(id), e.Log(id))
}
