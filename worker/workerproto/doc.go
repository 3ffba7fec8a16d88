// Package workerproto is the worker's side of worker-runner's protocol
// (references/worker-runner/workerproto-README.md): the messages a worker
// started by worker-runner (`start-worker`) exchanges with it over its
// stdin and stdout, or over a Windows named pipe given with
// --worker-runner-protocol-pipe (DialPipe).
//
// # Encoding
//
// A message is one line `~{...}` whose JSON object has a "type" and the
// message's properties at the top level. Every other line is not part of
// the protocol: lines the runner writes are copied to the passthrough
// writer (SetPassthrough), and the worker's own text output goes through
// Conn.Output, which keeps it in whole lines between messages. A line that
// looks like a message but does not decode (bad JSON, no type, a property
// of the wrong type) is passed through too; a message of an unknown type or
// of a capability that was not agreed is ignored.
//
// # Life cycle
//
//  1. New(r, w, capabilities...) with the capabilities the worker supports
//     (the Cap* constants); register OnGracefulTermination and
//     OnNewCredentials, and SetPassthrough, before Start.
//  2. Start(ctx) waits for the runner's `welcome`, answers `hello` with the
//     capabilities both sides have, and from then on reads messages in the
//     background, calling the handlers one at a time in arrival order.
//     Until Start returns, Capable is false for every capability.
//  3. The worker sends ErrorReport, Log and Shutdown with Send (only when
//     Capable; otherwise Send returns ErrNotCapable) and may log through
//     LogHandler, which sends `log` messages when the runner takes them.
//  4. Done is closed when the runner closes the worker's input; Err then
//     tells why.
//
// A nil *Conn is a worker not started by worker-runner: Capable is false
// and Send returns ErrNotCapable, so callers need no special case.
// Conn is safe for concurrent use.
package workerproto
