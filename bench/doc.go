// Package bench runs workergen and generic-worker side by side on the same
// task sets against one embedded Queue (taskcluster/localqueue) and prints
// medians and ratios. It backs `go tool mage bench`; it is a tool for people
// on a quiet machine, not a test (nothing in it runs under `go test`).
//
// Each round runs every scenario once on each worker binary, alternating
// which goes first. A worker is started fresh per scenario and round, in its
// own task queue and directory; it first runs one warm-up `true` task (so
// both are in their claim loop), then idle RSS is read, then the scenario's
// tasks are created, all depending on a gate task no worker claims, and the
// wall time runs from the gate's resolution (which makes them pending at
// once) until the Queue has them all resolved. Worker figures come from
// /proc of the worker process:
// CPU is utime+stime of the worker plus its reaped children (the task
// processes), bytes written to disk are write_bytes of /proc/<pid>/io (the
// worker and its reaped children), peak RSS is the highest VmRSS sampled
// every 10 ms during the scenario. Floors are measured by the benchmark
// itself against the same Queue: a claimWork + reportCompleted round trip
// per task with no work (from a process of its own, Options.FloorCommand,
// since a client in the Queue's process is answered faster than any
// worker can be), `cat` of the same bytes to a file, and a plain
// createArtifact + PUT of the same bytes (identity encoding).
//
// Linux only (it reads /proc).
package bench
