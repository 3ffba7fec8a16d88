package hello_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/engines/hello"
	"github.com/workergen/workergen/task"
)

func newTask(payload string) (*task.Context, *bytes.Buffer) {
	var buf bytes.Buffer
	return &task.Context{
		TaskID:     "a-taskId",
		Definition: task.Definition{Payload: json.RawMessage(payload)},
		Log:        task.NewLog(&buf),
	}, &buf
}

func TestHelloWritesGreeting(t *testing.T) {
	ctx := context.Background()
	e, err := hello.New(engines.Options{Config: json.RawMessage(`{}`)})
	require.NoError(t, err)
	defer func() { require.NoError(t, e.Close()) }()

	tc, log := newTask(`{"name": "world"}`)
	b, err := e.NewSandboxBuilder(ctx, tc)
	require.NoError(t, err)
	require.NoError(t, b.SetEnv("FOO", "bar"))
	require.ErrorIs(t, b.SetEnv("FOO", "baz"), engines.ErrEnvConflict)
	require.ErrorIs(t, b.SetEnv("A=B", "x"), engines.ErrInvalidEnvName)
	require.ErrorIs(t, b.SetEnv("X", "a\x00b"), engines.ErrInvalidEnvValue)

	s, err := b.Start(ctx)
	require.NoError(t, err)
	require.NoError(t, s.Kill())
	r, err := s.Wait(ctx)
	require.NoError(t, err)
	require.True(t, r.Success())
	require.Equal(t, 0, r.ExitCode())
	require.False(t, r.Killed())
	require.Equal(t, "Hello, world\n", log.String())

	_, err = r.ExtractFile(ctx, "x")
	require.ErrorIs(t, err, engines.ErrNotFound)
	require.ErrorIs(t, r.ExtractFolder(ctx, ".", nil), engines.ErrNotFound)
	require.NoError(t, r.Dispose())
}

func TestHelloAbort(t *testing.T) {
	ctx := context.Background()
	e, err := hello.New(engines.Options{})
	require.NoError(t, err)
	tc, _ := newTask(`{"name": "x"}`)
	b, err := e.NewSandboxBuilder(ctx, tc)
	require.NoError(t, err)
	s, err := b.Start(ctx)
	require.NoError(t, err)
	require.NoError(t, s.Abort())
	require.NoError(t, s.Abort())
	_, err = s.Wait(ctx)
	require.ErrorIs(t, err, engines.ErrAborted)
	_, err = b.Start(ctx)
	require.Error(t, err)
}

func TestHelloMalformedPayload(t *testing.T) {
	e, err := hello.New(engines.Options{})
	require.NoError(t, err)
	for _, p := range []string{`{}`, `{"name": 3}`, `{"name": "x", "extra": 1}`, `[]`} {
		tc, _ := newTask(p)
		_, err := e.NewSandboxBuilder(context.Background(), tc)
		var ee *task.ExceptionError
		require.True(t, errors.As(err, &ee), "payload %s: %v", p, err)
		require.Equal(t, task.ReasonMalformedPayload, ee.Reason)
	}
}

func TestHelloConfig(t *testing.T) {
	for _, c := range []string{``, `null`, `{}`} {
		_, err := hello.New(engines.Options{Config: json.RawMessage(c)})
		require.NoError(t, err, c)
	}
	_, err := hello.New(engines.Options{Config: json.RawMessage(`{"x": 1}`)})
	require.ErrorContains(t, err, "x")
}
