package tcwire

// Task and run states (task-status.json `state`).
const (
	StateUnscheduled = "unscheduled"
	StatePending     = "pending"
	StateRunning     = "running"
	StateCompleted   = "completed"
	StateFailed      = "failed"
	StateException   = "exception"
)

// Run reasonCreated values (task-status.json).
const (
	ReasonScheduled = "scheduled"
	ReasonRetry     = "retry"
	ReasonTaskRetry = "task-retry"
	ReasonRerun     = "rerun"
	ReasonException = "exception"
)

// Run reasonResolved values (task-status.json). The first five are the
// reasons a worker reports with reportException
// (task-exception-request.json); the Queue sets the others.
const (
	ReasonWorkerShutdown      = "worker-shutdown"
	ReasonMalformedPayload    = "malformed-payload"
	ReasonResourceUnavailable = "resource-unavailable"
	ReasonInternalError       = "internal-error"
	ReasonIntermittentTask    = "intermittent-task"

	ReasonCompleted        = "completed"
	ReasonFailed           = "failed"
	ReasonDeadlineExceeded = "deadline-exceeded"
	ReasonCanceled         = "canceled"
	ReasonClaimExpired     = "claim-expired"
	ReasonSuperseded       = "superseded"
)
