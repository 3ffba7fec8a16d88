//go:build !windows

package workerproto

import (
	"context"
	"fmt"
	"io"
)

// DialPipe connects to the named pipe worker-runner listens on
// (`\\.\pipe\<name>`, its worker.protocolPipe, given to the worker with
// --worker-runner-protocol-pipe). Outside Windows it always fails with
// ErrNoPipes; worker-runner uses stdin and stdout there.
func DialPipe(ctx context.Context, path string) (io.ReadWriteCloser, error) {
	return nil, fmt.Errorf("connecting to worker-runner protocol pipe %s: %w", path, ErrNoPipes)
}
