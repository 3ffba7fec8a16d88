package mock_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/engines/mock"
	"github.com/workergen/workergen/task"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newRun(t *testing.T, script string) (*mock.Engine, *task.Context, *bytes.Buffer) {
	t.Helper()
	e, err := mock.New(engines.Options{Config: json.RawMessage(`{}`)})
	require.NoError(t, err)
	var buf bytes.Buffer
	tc := &task.Context{
		TaskID:     "abc",
		TaskDir:    t.TempDir(),
		Log:        task.NewLog(&buf),
		Definition: task.Definition{Payload: json.RawMessage(`{"mock":` + script + `}`)},
	}
	return e.(*mock.Engine), tc, &buf
}

func TestScript(t *testing.T) {
	e, tc, buf := newRun(t, `{"files":{"a/b.txt":"hi"},"output":"out\n","printEnv":["X"],"exitCode":3,"oom":true}`)
	ctx := context.Background()
	b, err := e.NewSandboxBuilder(ctx, tc)
	require.NoError(t, err)
	require.NoError(t, b.SetEnv("X", "v"))
	require.ErrorIs(t, b.SetEnv("X", "w"), engines.ErrEnvConflict)
	require.ErrorIs(t, b.SetEnv("A=B", "w"), engines.ErrInvalidEnvName)
	require.ErrorIs(t, b.SetEnv("Y", "a\x00"), engines.ErrInvalidEnvValue)
	s, err := b.Start(ctx)
	require.NoError(t, err)
	r, err := s.Wait(ctx)
	require.NoError(t, err)
	assert.Equal(t, "out\nv\n", buf.String())
	assert.Equal(t, 3, r.ExitCode())
	assert.False(t, r.Success())
	assert.True(t, r.OOM())
	assert.Equal(t, map[string]string{"X": "v"}, e.Runs()[0].Env())
	f, err := r.ExtractFile(ctx, "a/b.txt")
	require.NoError(t, err)
	rc, err := f.Open()
	require.NoError(t, err)
	data, _ := io.ReadAll(rc)
	require.NoError(t, rc.Close())
	assert.Equal(t, "hi", string(data))
	require.NoError(t, r.Dispose())
}

func TestKillAndAbort(t *testing.T) {
	for _, abort := range []bool{false, true} {
		e, tc, _ := newRun(t, `{"sleep":"forever","exitCode":0}`)
		ctx := context.Background()
		b, err := e.NewSandboxBuilder(ctx, tc)
		require.NoError(t, err)
		s, err := b.Start(ctx)
		require.NoError(t, err)
		if abort {
			require.NoError(t, s.Abort())
			_, err := s.Wait(ctx)
			require.ErrorIs(t, err, engines.ErrAborted)
			continue
		}
		require.NoError(t, s.Kill())
		require.NoError(t, s.Kill())
		r, err := s.Wait(ctx)
		require.NoError(t, err)
		assert.True(t, r.Killed())
		assert.Equal(t, -1, r.ExitCode())
		assert.False(t, r.Success())
	}
}

func TestInjected(t *testing.T) {
	ctx := context.Background()
	e, tc, _ := newRun(t, `{"error":{"stage":"start","reason":"resource-unavailable","message":"gone"}}`)
	b, err := e.NewSandboxBuilder(ctx, tc)
	require.NoError(t, err)
	_, err = b.Start(ctx)
	var ee *task.ExceptionError
	require.True(t, errors.As(err, &ee))
	assert.Equal(t, task.ReasonResourceUnavailable, ee.Reason)
	assert.ErrorIs(t, err, mock.ErrInjected)

	e, tc, _ = newRun(t, `{"panic":"newSandboxBuilder"}`)
	assert.Panics(t, func() { _, _ = e.NewSandboxBuilder(ctx, tc) })

	e, tc, _ = newRun(t, `{"sleep":"soon"}`)
	_, err = e.NewSandboxBuilder(ctx, tc)
	require.True(t, errors.As(err, &ee))
	assert.Equal(t, task.ReasonMalformedPayload, ee.Reason)
	assert.Contains(t, err.Error(), "payload.mock.sleep")
}
