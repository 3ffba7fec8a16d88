// Package daemontest gives the container engine's tests the container
// daemons of the machine as a table: Podman's API service and a Docker
// daemon, each set up by a script of .ci/ (podman-setup.sh, docker-setup.sh)
// that writes the daemon's socket to an environment file.
//
// A test that should pass against every daemon runs its body once per
// daemon with ForEach; each daemon is a subtest named after it ("podman",
// "docker"). A daemon that is not set up is a skipped subtest saying how to
// set it up, except in CI (environment CI=true), where both must be present
// and a missing one fails the test.
package daemontest

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moby/moby/client"
)

// Daemon is one container daemon the tests can use.
type Daemon struct {
	// Name is "podman" or "docker".
	Name string
	// Profile is the worker profile made for it: "linux-podman",
	// "linux-docker".
	Profile string
	// SocketVar is the variable holding its socket, e.g.
	// WORKERGEN_PODMAN_SOCKET.
	SocketVar string
	// EnvFile is where its set-up script writes SocketVar, e.g.
	// /run/workergen-podman.env.
	EnvFile string
	// Setup is the script that sets it up, relative to the repository root.
	Setup string
	// Socket is the Docker Engine API endpoint ("unix:///run/....sock"),
	// empty when the daemon is not set up.
	Socket string
}

// All returns the known daemons, Podman first, each with its Socket read
// from the environment or its EnvFile (empty when neither has it).
func All() []Daemon {
	ds := []Daemon{
		{Name: "podman", Profile: "linux-podman", SocketVar: "WORKERGEN_PODMAN_SOCKET", EnvFile: "/run/workergen-podman.env", Setup: ".ci/podman-setup.sh"},
		{Name: "docker", Profile: "linux-docker", SocketVar: "WORKERGEN_DOCKER_SOCKET", EnvFile: "/run/workergen-docker.env", Setup: ".ci/docker-setup.sh"},
	}
	for i := range ds {
		ds[i].Socket = Env(ds[i].SocketVar)
	}
	return ds
}

// ByName returns the daemon called name ("podman" or "docker").
func ByName(name string) Daemon {
	for _, d := range All() {
		if d.Name == name {
			return d
		}
	}
	panic("daemontest: unknown daemon " + name)
}

// Env returns variable name from the process environment, else from the
// first of the set-up scripts' environment files that has it, else "".
func Env(name string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	for _, f := range []string{"/run/workergen-podman.env", "/run/workergen-docker.env"} {
		if v := fileEnv(f, name); v != "" {
			return v
		}
	}
	return ""
}

// fileEnv reads name from a file of KEY=VALUE lines.
func fileEnv(path, name string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok && k == name {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// InCI reports whether the tests run in CI (CI=true), where every daemon
// must be present.
func InCI() bool { return os.Getenv("CI") == "true" }

// Missing returns why d cannot be used, or "" when it can: its socket is
// not configured, or a unix socket that does not exist.
func (d Daemon) Missing() string {
	if d.Socket == "" {
		return fmt.Sprintf("no %s daemon: set %s, or run %s as root (it writes %s)", d.Name, d.SocketVar, d.Setup, d.EnvFile)
	}
	if p, ok := strings.CutPrefix(d.Socket, "unix://"); ok {
		if _, err := os.Stat(p); err != nil {
			return fmt.Sprintf("%s daemon socket %s (%s) is not there: run %s as root", d.Name, d.Socket, d.SocketVar, d.Setup)
		}
	}
	return ""
}

// Require skips t (fails it in CI) unless d can be used.
func Require(t testing.TB, d Daemon) {
	t.Helper()
	why := d.Missing()
	switch {
	case why == "":
	case InCI():
		t.Fatalf("CI=true and %s", why)
	default:
		t.Skip(why)
	}
}

// ForEach runs body as a subtest per daemon, skipped (failed in CI) for a
// daemon that is not set up.
func ForEach(t *testing.T, body func(t *testing.T, d Daemon)) {
	t.Helper()
	for _, d := range All() {
		t.Run(d.Name, func(t *testing.T) {
			Require(t, d)
			body(t, d)
		})
	}
}

// ForEachB is ForEach for benchmarks.
func ForEachB(b *testing.B, body func(b *testing.B, d Daemon)) {
	b.Helper()
	for _, d := range All() {
		b.Run(d.Name, func(b *testing.B) {
			Require(b, d)
			body(b, d)
		})
	}
}

// Client returns an API client for d, closed at the end of t.
func Client(t testing.TB, d Daemon) *client.Client {
	t.Helper()
	cli, err := client.New(client.WithHost(d.Socket), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatalf("%s client: %v", d.Name, err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// Network creates a bridge network of the test's own on d and returns its
// name; it is removed at the end of t. Tests give it to the engine
// (engine.network) so the worker host's address they listen on (the
// network's gateway) is theirs alone, never the default bridge's gateway
// that a running worker on the same machine may hold port 80 of.
func Network(t testing.TB, d Daemon) string {
	t.Helper()
	cli := Client(t, d)
	name := fmt.Sprintf("workergen-test-%d-%d", os.Getpid(), networkSeq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := cli.NetworkCreate(ctx, name, client.NetworkCreateOptions{Driver: "bridge", Labels: map[string]string{"org.workergen.test": "true"}}); err != nil {
		t.Fatalf("%s: creating network %s: %v", d.Name, name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if _, err := cli.NetworkRemove(ctx, name, client.NetworkRemoveOptions{}); err != nil {
			t.Errorf("%s: removing network %s: %v", d.Name, name, err)
		}
	})
	return name
}

var networkSeq atomic.Int64
