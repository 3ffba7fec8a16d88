//go:build linux

package container

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/engines/container/daemontest"
)

// TestHostNameReachesTheWorkerHost: a name added with AddHostName resolves
// in the container to an address of the host a service can listen on, and
// the connections that service gets come from the sandbox's Address; on
// each daemon's default network (Docker's default bridge may state no
// gateway: see TestProxyOnDockerBridgeWithoutGateway).
func TestHostNameReachesTheWorkerHost(t *testing.T) {
	daemontest.ForEach(t, hostNameReachesTheWorkerHost)
}

func hostNameReachesTheWorkerHost(t *testing.T, d daemontest.Daemon) {
	e := newTestEngineOn(t, d, nil)
	r := newRun(t, e, payload(t, "sh", "-c", `grep -w taskcluster /etc/hosts; wget -qO- "http://taskcluster:$PORT/hello"`))
	ctx := testCtx(t)
	b, err := e.NewSandboxBuilder(ctx, r.tc)
	if err != nil {
		t.Fatal(err)
	}
	ip, err := b.(engines.HostNameBuilder).AddHostName(ctx, "taskcluster")
	if err != nil {
		t.Fatal(err)
	}
	// The bridge may not exist before the first container starts: bind
	// with IP_FREEBIND, as the taskcluster proxy does.
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_FREEBIND, 1) }); err != nil {
			return err
		}
		return serr
	}}
	l, err := lc.Listen(ctx, "tcp", netip.AddrPortFrom(ip, 0).String())
	if err != nil {
		t.Fatal(err)
	}
	from := make(chan string, 1)
	release := make(chan struct{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		from <- req.RemoteAddr
		<-release // the container is still running while the test asks its address
		fmt.Fprint(w, "hello from the host")
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	if err := b.SetEnv("PORT", fmt.Sprint(l.Addr().(*net.TCPAddr).Port)); err != nil {
		t.Fatal(err)
	}
	s, err := b.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	remote := <-from
	addr, err := s.(engines.AddressedSandbox).Address(ctx)
	close(release)
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Dispose()
	if host, _, _ := net.SplitHostPort(remote); host != addr.String() {
		t.Errorf("connection from %s, sandbox Address %s", remote, addr)
	}
	log := r.log.String()
	if !strings.Contains(log, ip.String()) || !strings.Contains(log, "hello from the host") {
		t.Errorf("log:\n%s\nwant the hosts entry for %s and the host's answer", log, ip)
	}

	none := newTestEngineOn(t, d, map[string]any{"network": "none"})
	nb, err := none.NewSandboxBuilder(ctx, newRun(t, none, payload(t, "true")).tc)
	if err != nil {
		t.Fatal(err)
	}
	defer nb.Discard()
	if _, err := nb.(engines.HostNameBuilder).AddHostName(context.Background(), "taskcluster"); err == nil || !strings.Contains(err.Error(), "network is \"none\"") {
		t.Errorf("AddHostName with network none: %v", err)
	}
}
