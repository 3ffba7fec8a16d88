//go:build linux

package container

import (
	"encoding/json"
	"log/slog"
	"slices"
	"strings"
	"testing"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/engines/container/daemontest"
)

func TestMissingCaps(t *testing.T) {
	if got := missingCaps(0x1fffeffffff, 40); !slices.Equal(got, []string{"CAP_SYS_RESOURCE"}) {
		t.Errorf("missingCaps = %v", got)
	}
	if got := missingCaps(0x1ffffffffff, 40); len(got) != 0 {
		t.Errorf("full set: missingCaps = %v", got)
	}
	if got := missingCaps(0x3ffffffffff, 41); !slices.Equal(got, []string{"capability 41"}) && len(got) != 0 {
		t.Errorf("newer kernel: missingCaps = %v", got)
	}
}

// TestDaemonDifferences: the engine tells the daemons apart, and a
// privileged task either runs privileged or, on a Docker daemon that cannot
// start privileged containers on this host (its bounding set lacks a
// capability), allowPrivileged is refused when the engine starts, naming
// the daemon and the missing capabilities.
func TestDaemonDifferences(t *testing.T) {
	daemontest.ForEach(t, func(t *testing.T, d daemontest.Daemon) {
		e := newTestEngineOn(t, d, nil)
		want := map[string]string{"docker": DaemonDocker, "podman": DaemonPodman}[d.Name]
		if e.Daemon() != want {
			t.Fatalf("Daemon() = %q, want %q", e.Daemon(), want)
		}
		missing, _ := daemonMissingCaps(d.Socket)
		if d.Name == "docker" && len(missing) > 0 {
			raw, _ := json.Marshal(map[string]any{"socket": d.Socket, "allowPrivileged": true})
			_, err := NewEngine(engines.Options{Config: raw, Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil)), Worker: e.worker})
			if err == nil {
				t.Fatalf("allowPrivileged accepted by a Docker daemon lacking %v", missing)
			}
			for _, s := range append([]string{"allowPrivileged", "Docker daemon", "Podman"}, missing...) {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error lacks %q: %v", s, err)
				}
			}
			return
		}
		p := payload(t, "sh", "-c", "grep CapEff /proc/self/status")
		p["capabilities"] = map[string]any{"privileged": true}
		pe := newTestEngineOn(t, d, map[string]any{"allowPrivileged": true})
		r := newRun(t, pe, p, "docker-worker:capability:privileged")
		res := runTask(t, pe, r, nil)
		if !res.Success() || strings.Contains(r.log.String(), "a80425fb") {
			t.Fatalf("privileged task: success=%v, log:\n%s", res.Success(), r.log.String())
		}
	})
}

// TestLeftoversOnEachDaemon: on each daemon, a worker restarted with the
// same identity removes the container its previous process left running.
func TestLeftoversOnEachDaemon(t *testing.T) {
	daemontest.ForEach(t, func(t *testing.T, d daemontest.Daemon) {
		e := newTestEngineOn(t, d, nil)
		r := newRun(t, e, payload(t, "sleep", "600"))
		ctx := testCtx(t)
		b, err := e.NewSandboxBuilder(ctx, r.tc)
		if err != nil {
			t.Fatal(err)
		}
		s, err := b.Start(ctx)
		if err != nil {
			t.Fatal(err)
		}
		id := s.(*sandbox).id
		raw, _ := json.Marshal(map[string]any{"socket": d.Socket})
		again, err := NewEngine(engines.Options{Config: raw, Worker: e.worker, Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil))})
		if err != nil {
			t.Fatal(err)
		}
		defer again.Close()
		if _, err := e.cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{}); err == nil || !cerrdefs.IsNotFound(err) {
			t.Fatalf("%s: leftover container %s still there after the restart: %v", d.Name, id, err)
		}
		_, _ = s.Wait(ctx) // ends: the container is gone
	})
}

// TestTTYKeepsStreamOrder: with engine.tty the task's stdout and stderr are
// one stream, in order, on each daemon (without it Docker may reorder
// them: enginetest's UnorderedStreams).
func TestTTYKeepsStreamOrder(t *testing.T) {
	daemontest.ForEach(t, func(t *testing.T, d daemontest.Daemon) {
		e := newTestEngineOn(t, d, map[string]any{"tty": true})
		r := newRun(t, e, payload(t, "sh", "-c", "for i in 1 2 3 4 5; do echo out$i; echo err$i >&2; done"))
		res := runTask(t, e, r, nil)
		log := strings.ReplaceAll(r.log.String(), "\r\n", "\n")
		want := "out1\nerr1\nout2\nerr2\nout3\nerr3\nout4\nerr4\nout5\nerr5\n"
		if !res.Success() || !strings.Contains(log, want) {
			t.Fatalf("success=%v; log:\n%q\nwant it to hold %q", res.Success(), log, want)
		}
	})
}
