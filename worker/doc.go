// Package worker is the runtime every generated worker binary calls: a
// generated main hands Main a Build (the profile's identity, its embedded
// schemas and default config, and constructors for exactly the engine and
// plugins the profile chose), and Main runs one command.
//
// The package is three parts, each in its own files:
//
//   - The CLI (main.go, cmd_run.go, cmd_work.go, taskfile.go): `--version`,
//     `schema payload|config`, `run TASK_FILE` (one task without a Queue,
//     through RunLocal: task directory, log, artifacts and manifest.json
//     under an output directory) and `work --config FILE` (the claim loop),
//     also spelt as generic-worker's `run --config FILE
//     [--with-worker-runner] [--worker-runner-protocol-pipe PIPE]`
//     (cmd_work.go serve). The config file is workergen's or
//     generic-worker's (serveconfig.go, package gwconfig). Exit codes are
//     the Exit* constants, generic-worker's where the event is the same.
//   - worker-runner (runnerproto.go, lifecycle.go): the protocol session
//     (package workerproto: handshake, `log`, `new-credentials` swapping
//     the worker's credentials, `error-report`, `shutdown` on every exit)
//     and the Worker's Lifecycle: graceful termination, worker-manager's
//     shouldWorkerTerminate before an idle exit and every few minutes, and
//     the StopReason that gives the exit code.
//   - Construction (runtime.go, build.go): LoadConfig reads the operator's
//     config with package config; NewRunner constructs the engine, then
//     every plugin in declared order, from their config sections into a
//     taskrun.Runner; Runner.Close closes them in reverse order.
//   - The claim loop (work.go, queuesink.go): a Worker claims tasks for its
//     workerPoolId, runs up to capacity at once, keeps each claim alive
//     with reclaimTask (a 409 cancels the run through its taskrun.Control),
//     uploads artifacts with the run's task credentials, and reports each
//     run's resolution once; on shutdown, running tasks get the grace
//     period, then resolve exception/worker-shutdown.
//
// The stages of one run (payload check, NewTaskPlugin, ..., Finished) are
// package taskrun's, shared with plugins/plugintest; JSON Schema
// validation is package schema's.
package worker
