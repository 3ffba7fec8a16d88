// Package tcwire holds the Taskcluster types that cross the wire and every
// layer of a worker: the task definition (queue/v1 task.json and
// create-task-request.json), credentials, the scope satisfaction rule, and
// the error answer of a Taskcluster service.
//
// It is a leaf: it imports only the standard library, so the task context
// (package task), the HTTP client (taskcluster), Hawk (taskcluster/hawk),
// the embedded Queue (taskcluster/localqueue), engines and plugins all share
// these types instead of converting between copies.
//
// Life cycle of a task definition: a client or task file creates it
// (TaskDefinition with only what it sets; absent members are left out of
// the JSON so the Queue applies its defaults), the Queue stores it with every
// default filled in and serves it in `task` and `claimWork` answers, and the
// worker hands it unchanged to the engine and plugins as task.Definition.
package tcwire
