package task

import "slices"

// Dialect is a task payload format, named as a profile's `dialect:` field
// names it (schemas/dialects.cue). A worker speaks exactly one: the
// generated main passes its profile's dialect to the engine and to every
// plugin (engines.Options.Dialect, plugins.Options.Dialect), and components
// that serve several dialects branch on it.
type Dialect string

// The dialects of the shipped schemas.
const (
	// DialectGenericWorkerPosix is generic-worker's payload on Linux, macOS
	// and FreeBSD (upstream generic-worker/insecure_posix.json).
	DialectGenericWorkerPosix Dialect = "generic-worker-posix"
	// DialectGenericWorkerMultiuserPosix is generic-worker's payload for
	// its multiuser engine on Linux, macOS and FreeBSD (upstream
	// generic-worker/multiuser_posix.json): every task runs as a fresh OS
	// user.
	DialectGenericWorkerMultiuserPosix Dialect = "generic-worker-multiuser-posix"
	// DialectGenericWorkerWindows is generic-worker's payload on Windows
	// (upstream generic-worker/multiuser_windows.json).
	DialectGenericWorkerWindows Dialect = "generic-worker-windows"
	// DialectDockerWorker is docker-worker's payload (upstream
	// docker-worker/v1/payload.json).
	DialectDockerWorker Dialect = "docker-worker"
	// DialectHello is workergen's demonstration payload {"name": "..."}.
	DialectHello Dialect = "hello"
)

// Dialects returns every dialect constant above, sorted.
func Dialects() []Dialect {
	return []Dialect{DialectDockerWorker, DialectGenericWorkerMultiuserPosix, DialectGenericWorkerPosix, DialectGenericWorkerWindows, DialectHello}
}

// Known reports whether d is one of Dialects.
func (d Dialect) Known() bool { return slices.Contains(Dialects(), d) }

// IsDockerWorker reports whether d is docker-worker's payload format.
// Components serving both generic-worker and docker-worker payloads take
// the generic-worker form for every other dialect, the zero value included.
func (d Dialect) IsDockerWorker() bool { return d == DialectDockerWorker }
