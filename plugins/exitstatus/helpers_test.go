package exitstatus_test

import (
	"context"
	"strconv"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/plugins"
	"github.com/workergen/workergen/task"
)

func itoa(i int) string { return strconv.Itoa(i) }

// killer kills the sandbox as soon as it started.
type killer struct{}

func killOnStart() (plugins.Plugin, error) { return killer{}, nil }

func (killer) NewTaskPlugin(context.Context, *task.Context) (plugins.TaskPlugin, error) {
	return killerTask{}, nil
}
func (killer) Close() error { return nil }

type killerTask struct{ plugins.Base }

func (killerTask) Started(_ context.Context, s engines.Sandbox) error { return s.Kill() }
