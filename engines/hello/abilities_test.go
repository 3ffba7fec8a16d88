package hello_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/engines/enginetest"
	"github.com/workergen/workergen/engines/hello"
)

// The hello engine declares the abilities its types implement (none).
func TestAbilities(t *testing.T) {
	ctx := context.Background()
	e, err := hello.New(engines.Options{Config: json.RawMessage(`{}`)})
	require.NoError(t, err)
	defer func() { require.NoError(t, e.Close()) }()
	tc, _ := newTask(`{"name": "world"}`)
	b, err := e.NewSandboxBuilder(ctx, tc)
	require.NoError(t, err)
	s, err := b.Start(ctx)
	require.NoError(t, err)
	rs, err := s.Wait(ctx)
	require.NoError(t, err)
	defer func() { require.NoError(t, rs.Dispose()) }()
	require.NoError(t, enginetest.CheckAbilities(enginetest.SchemaAbilities(t, "hello"), e, b, s))
}
