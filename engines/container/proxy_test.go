//go:build linux

package container_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/moby/moby/client"
	"golang.org/x/sys/unix"

	"github.com/workergen/workergen/engines/container/daemontest"
)

// statusScript reads the task's own status through the proxy at the name
// docker-worker tasks use, on port 80.
const statusScript = `echo "proxy at $TASKCLUSTER_PROXY_URL"; wget -qO- "http://taskcluster/api/queue/v1/task/$TASK_ID/status"`

// TestProxyBesideBusyGateway: a docker-worker task with
// features.taskclusterProxy reads its own status through http://taskcluster
// on each daemon while another process holds port 80 on Podman's default
// bridge gateway; on Podman two workers of one host serve proxy tasks at
// the same time. Each worker's containers are on a network of its own
// (engine.network; the second worker's engine creates its network itself),
// whose gateway's port 80 is the worker's.
func TestProxyBesideBusyGateway(t *testing.T) {
	pod := daemontest.ByName("podman")
	daemontest.Require(t, pod)
	holdPort80(t, podmanGateway(t, pod))
	daemontest.ForEach(t, func(t *testing.T, d daemontest.Daemon) {
		workers := 1
		if d.Name == "podman" {
			workers = 2
		}
		envs := make([]*itEnv, workers)
		ids := make([]string, workers)
		for i := range envs {
			ec := map[string]any{}
			if i == 1 {
				// A network the engine creates itself, at start.
				name := fmt.Sprintf("workergen-test-%d-own", os.Getpid())
				ec["network"] = name
				removeNetworkAtEnd(t, d, name)
			}
			envs[i] = newItEnvOn(t, d, ec)
			p := envs[i].payload(statusScript)
			p["features"] = map[string]any{"taskclusterProxy": true}
			ids[i] = envs[i].createTask(p)
		}
		var wg sync.WaitGroup
		for _, e := range envs {
			wg.Go(func() { e.work(1) })
		}
		wg.Wait()
		for i, e := range envs {
			e.expect(ids[i], "completed", "proxy at http://taskcluster\n", `"taskId":"`+ids[i]+`"`, `"state":"running"`)
		}
	})
}

// removeNetworkAtEnd removes network name from d at the end of t (after
// the workers' clean-ups, registered later).
func removeNetworkAtEnd(t *testing.T, d daemontest.Daemon, name string) {
	cli := daemontest.Client(t, d)
	t.Cleanup(func() {
		if _, err := cli.NetworkRemove(context.Background(), name, client.NetworkRemoveOptions{}); err != nil {
			t.Errorf("removing network %s: %v", name, err)
		}
	})
}

// podmanGateway is the gateway of Podman's default network.
func podmanGateway(t *testing.T, d daemontest.Daemon) netip.Addr {
	t.Helper()
	cli := daemontest.Client(t, d)
	res, err := cli.NetworkInspect(context.Background(), "bridge", client.NetworkInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range res.Network.IPAM.Config {
		if c.Gateway.Is4() {
			return c.Gateway
		}
	}
	t.Fatalf("Podman's default network states no gateway: %+v", res.Network.IPAM)
	return netip.Addr{}
}

// holdPort80 makes another process hold ip:80 for the rest of t. If some
// other process holds it already (a worker on this machine), that is the
// condition wanted too.
func holdPort80(t *testing.T, ip netip.Addr) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperHoldPort$")
	cmd.Env = append(os.Environ(), "WORKERGEN_HOLD_ADDR="+netip.AddrPortFrom(ip, 80).String())
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Wait() })
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	switch {
	case strings.HasPrefix(line, "holding "):
		t.Logf("another process (pid %d) holds %s:80", cmd.Process.Pid, ip)
	case strings.HasPrefix(line, "in use "):
		t.Logf("%s:80 is already held by some process of this machine", ip)
	default:
		t.Fatalf("port holder: %q", line)
	}
}

// TestHelperHoldPort is the process holdPort80 starts: it listens on
// $WORKERGEN_HOLD_ADDR until its stdin closes.
func TestHelperHoldPort(t *testing.T) {
	addr := os.Getenv("WORKERGEN_HOLD_ADDR")
	if addr == "" {
		t.Skip("helper process of TestProxyBesideBusyGateway")
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_FREEBIND, 1) }); err != nil {
			return err
		}
		return serr
	}}
	l, err := lc.Listen(context.Background(), "tcp", addr)
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		fmt.Println("in use", addr)
	case err != nil:
		fmt.Println("error", err)
		return
	default:
		defer l.Close()
		fmt.Println("holding", addr)
	}
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
}
