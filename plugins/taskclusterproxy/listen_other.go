//go:build !linux

package taskclusterproxy

import (
	"context"
	"net"
)

// listen listens on addr.
func listen(ctx context.Context, addr string) (net.Listener, error) {
	var lc net.ListenConfig
	return lc.Listen(ctx, "tcp", addr)
}
