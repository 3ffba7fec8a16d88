// Package taskrun runs one task run through its stages: the stage sequence
// of every workergen worker, shared by the worker's `run` and `work`
// commands and by plugins/plugintest, so that a plugin's tests go through
// exactly the production sequence.
//
// A Runner holds the engine and the profile's plugins (constructed once per
// worker), the composed payload schema and the profile's unsupported
// payload fields. Runner.Run takes a *task.Context for one run and a
// Control through which the caller can stop it, and returns an Outcome:
// the Taskcluster resolution, the task's exit code and run time, and the
// reasons of an exception or failure (also written to the task log).
//
// The stages are a table (sequence in stages.go), each row naming the
// stage, what it calls (on every task plugin in declared order, or on the
// engine) and what an error of it does to the run:
//
//	CheckPayload       payload present, valid JSON, no unsupported field, schema
//	NewTaskPlugin      each plugin decodes its payload fields
//	NewSandboxBuilder  the engine decodes its payload fields
//	AcceptPayload      every malformed-payload reason of the two above, together
//	Prepare            plugins fetch what the task needs
//	BuildSandbox       plugins configure the sandbox builder
//	Start              the engine starts the task
//	Started            plugins see the running sandbox (an error kills the task)
//	Wait               the task ends (maxRunTime, Control, its own exit)
//	Stopped            plugins see the result; each may turn success into failure
//
// Then Finished (with the resolution: completed, or failed with reasons),
// or Exception when a stage ended the run, with RunEndedEarly for plugins
// whose NewTaskPlugin refused the run; Dispose for every created task
// plugin in reverse order and the engine's clean-up (ResultSet.Dispose,
// Sandbox.Abort, SandboxBuilder.Discard) always end it. An error that is no
// *task.ExceptionError, and any panic of an engine or plugin, is
// exception/internal-error for the run alone.
//
// Stages before the task starts are cancelled by Control.Shutdown (the run
// resolves exception/worker-shutdown); a started task is killed and its
// results still collected. Control.Cancel (the Queue took the run back)
// aborts everything and the Outcome is not to be reported. Wait is never
// cancelled through its context: the task's own stop conditions bound it.
//
// The task log of every run starts with a header (task, run, worker,
// profile, version, engine) and ends with a footer (exit code, duration,
// resolution). Hooks let a caller watch the stages from inside.
package taskrun
