package env_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/engines/mock"
	"github.com/workergen/workergen/task"
)

// strictEngine is the mock engine with a builder refusing names with '-'.
type strictEngine struct{}

func (strictEngine) NewSandboxBuilder(ctx context.Context, tc *task.Context) (engines.SandboxBuilder, error) {
	e, err := mock.New(engines.Options{Config: json.RawMessage(`{}`)})
	if err != nil {
		return nil, err
	}
	b, err := e.NewSandboxBuilder(ctx, tc)
	if err != nil {
		return nil, err
	}
	return strictBuilder{b}, nil
}

func (strictEngine) Close() error { return nil }

type strictBuilder struct{ engines.SandboxBuilder }

func (b strictBuilder) SetEnv(name, value string) error {
	if strings.Contains(name, "-") {
		return fmt.Errorf("%q: %w", name, engines.ErrInvalidEnvName)
	}
	return b.SandboxBuilder.SetEnv(name, value)
}
