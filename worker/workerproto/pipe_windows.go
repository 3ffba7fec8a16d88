//go:build windows

package workerproto

import (
	"context"
	"fmt"
	"io"

	"github.com/Microsoft/go-winio"
)

// DialPipe connects to the named pipe worker-runner listens on
// (`\\.\pipe\<name>`, its worker.protocolPipe, given to the worker with
// --worker-runner-protocol-pipe). The connection carries the protocol in
// both directions: pass it to New as reader and writer, and close it on
// exit. ctx bounds the connection attempt only.
func DialPipe(ctx context.Context, path string) (io.ReadWriteCloser, error) {
	conn, err := winio.DialPipeContext(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("connecting to worker-runner protocol pipe %s: %w", path, err)
	}
	return conn, nil
}
