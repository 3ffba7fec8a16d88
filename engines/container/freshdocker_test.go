//go:build linux

package container_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/workergen/workergen/engines/container/daemontest"
)

// TestProxyOnDockerBridgeWithoutGateway starts a Docker daemon of its own
// on a fresh data root and a bridge interface with no address yet, as on a
// machine where Docker never ran: its default bridge network states a
// subnet and no gateway in its IPAM config. A docker-worker task with
// features.taskclusterProxy on that default network still reads its own
// status through http://taskcluster.
func TestProxyOnDockerBridgeWithoutGateway(t *testing.T) {
	d := freshDocker(t)
	cli := daemontest.Client(t, d)
	res, err := cli.NetworkInspect(context.Background(), "bridge", client.NetworkInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range res.Network.IPAM.Config {
		if c.Gateway.IsValid() {
			t.Fatalf("the fresh daemon's default bridge states gateway %s: the case under test is one without", c.Gateway)
		}
	}
	t.Logf("default bridge IPAM: %+v", res.Network.IPAM.Config)
	e := newItEnvOn(t, d, map[string]any{"network": "bridge"})
	p := e.payload(statusScript)
	p["features"] = map[string]any{"taskclusterProxy": true}
	id := e.createTask(p)
	e.work(1)
	e.expect(id, "completed", "proxy at http://taskcluster\n", `"taskId":"`+id+`"`, `"state":"running"`)
}

// freshDocker starts dockerd with a data root, exec root and socket in a
// new directory, on a new bridge interface without an address (so the
// daemon picks a subnet itself, as with no docker0 yet), the vfs storage
// driver (no mounts to clean), and no iptables or sysctl changes. It is
// stopped, and its bridge and directory removed, at the end of t. Skipped
// (failed with CI=true) without root or dockerd.
func freshDocker(t *testing.T) daemontest.Daemon {
	t.Helper()
	docker := daemontest.ByName("docker")
	dockerd, err := exec.LookPath("dockerd")
	ip, ipErr := exec.LookPath("ip")
	switch {
	case os.Geteuid() != 0 || err != nil || ipErr != nil:
		why := "needs root, dockerd and ip (run " + docker.Setup + " as root)"
		if daemontest.InCI() {
			t.Fatal("CI=true: " + why)
		}
		t.Skip(why)
	}
	var b [3]byte
	_, _ = rand.Read(b[:])
	br := "wgtest" + hex.EncodeToString(b[:]) // at most 15 bytes
	dir, err := os.MkdirTemp("", "wgdocker")  // short: socket paths live under it
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(ip, "link", "add", br, "type", "bridge").CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		t.Fatalf("ip link add %s: %v: %s", br, err, out)
	}
	sock := filepath.Join(dir, "docker.sock")
	logf, err := os.Create(filepath.Join(dir, "dockerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(dockerd, "--host", "unix://"+sock, "--data-root", filepath.Join(dir, "data"),
		"--exec-root", filepath.Join(dir, "exec"), "--pidfile", filepath.Join(dir, "dockerd.pid"),
		"--bridge", br, "--storage-driver", "vfs", "--iptables=false", "--ip-forward=false", "--ip-masq=false")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(time.Minute):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		logf.Close()
		if t.Failed() {
			if log, err := os.ReadFile(logf.Name()); err == nil {
				t.Logf("dockerd log:\n%s", log)
			}
		}
		if out, err := exec.Command(ip, "link", "del", br).CombinedOutput(); err != nil {
			t.Errorf("ip link del %s: %v: %s", br, err, out)
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("removing the daemon's directory: %v", err)
		}
	})
	d := daemontest.Daemon{Name: "docker-fresh", Profile: docker.Profile, SocketVar: docker.SocketVar, Setup: docker.Setup, Socket: "unix://" + sock}
	cli := daemontest.Client(t, d)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := cli.Ping(ctx, client.PingOptions{})
		cancel()
		if err == nil {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("dockerd on %s did not answer: %v", sock, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
