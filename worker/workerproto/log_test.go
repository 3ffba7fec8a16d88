package workerproto_test

import (
	"bytes"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/worker/workerproto"
)

func TestLogHandlerSendsAttrsAsBodyFields(t *testing.T) {
	c, r := pair(t, nil, workerproto.AllCapabilities...)
	var fallback bytes.Buffer
	log := slog.New(c.LogHandler(slog.NewTextHandler(&fallback, nil)))
	_, err := r.Hello(ctx(t))
	require.NoError(t, err)

	log = log.With("workerId", "w1").WithGroup("task")
	log.Warn("claimed", "taskId", "abc", "runId", 0, slog.Group("limits", "maxRunTime", 3*time.Second),
		"err", errors.New("boom"), slog.Group("empty"))
	log.Debug("below the fallback's level is not sent")
	log.WithGroup("unused").Info("bare")
	require.NoError(t, c.Send(workerproto.Shutdown{}))
	_, err = r.WaitFor(ctx(t), "shutdown")
	require.NoError(t, err)

	assert.NotContains(t, fallback.String(), "claimed")
	logs := r.Messages("log")
	require.Len(t, logs, 2)
	body := logs[0]["body"].(map[string]any)
	assert.IsType(t, "", body["time"])
	delete(body, "time")
	assert.Equal(t, map[string]any{
		"textPayload": "claimed",
		"level":       "WARN",
		"workerId":    "w1",
		"task": map[string]any{
			"taskId": "abc", "runId": float64(0), "err": "boom",
			"limits": map[string]any{"maxRunTime": "3s"},
		},
	}, body)
	body = logs[1]["body"].(map[string]any)
	assert.NotContains(t, body, "task", "empty groups are left out")
	assert.Equal(t, "bare", body["textPayload"])
}

func TestLogHandlerFallsBackWithoutLogCapability(t *testing.T) {
	c, r := pair(t, []string{"shutdown"}, workerproto.AllCapabilities...)
	_, err := r.Hello(ctx(t))
	require.NoError(t, err)
	var fallback bytes.Buffer
	slog.New(c.LogHandler(slog.NewTextHandler(&fallback, nil))).Info("hello there", "k", "v")
	assert.Contains(t, fallback.String(), `msg="hello there" k=v`)
	var nilConn *workerproto.Conn
	fallback.Reset()
	slog.New(nilConn.LogHandler(slog.NewTextHandler(&fallback, nil))).Info("no runner")
	assert.Contains(t, fallback.String(), "no runner")
	unstarted := workerproto.New(bytes.NewReader(nil), &fallback, workerproto.CapLog)
	slog.New(unstarted.LogHandler(slog.NewTextHandler(&fallback, nil))).Info("before the handshake")
	assert.Contains(t, fallback.String(), "before the handshake")
	assert.Empty(t, r.Messages("log"))
}
