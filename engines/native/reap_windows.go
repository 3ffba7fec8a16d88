package native

import "context"

// group: Windows commands have job objects, not process groups; a job
// object (JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE) dies with the worker.
func (p *proc) group() int { return 0 }

func reapProcessGroup(context.Context, int) error { return nil }
