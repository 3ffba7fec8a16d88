package container_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/workergen/workergen/engines/container/daemontest"
	"github.com/workergen/workergen/worker"
)

// BenchmarkTrueOnDaemons runs `true` in the busybox test image, b.N times,
// interleaved in each repeat: through the worker on Docker (linux-docker,
// run mode: payload schema, plugins, task log, artifacts directory, the
// engine), `docker run --rm`, through the worker on Podman (linux-podman),
// `podman run --rm`. The worker and the CLI use the same network (the
// test's own) on each daemon. Every repeat is logged (-v) in milliseconds;
// the medians are reported per variant. Daemons not set up are left out
// (CI=true: a failure).
//
//	go test -run '^$' -bench TrueOnDaemons -benchtime 20x -v ./engines/container
func BenchmarkTrueOnDaemons(b *testing.B) {
	type variant struct {
		name string
		run  func()
		ms   []float64
	}
	var vs []*variant
	for _, d := range daemontest.All() {
		if why := d.Missing(); why != "" {
			if daemontest.InCI() {
				b.Fatal("CI=true and " + why)
			}
			b.Log("left out: " + why)
			continue
		}
		cliPath, err := exec.LookPath(d.Name)
		if err != nil {
			b.Fatalf("%s CLI: %v", d.Name, err)
		}
		e := newItEnvOn(b, d, map[string]any{})
		network := e.cfg.Engine
		var ec struct {
			Network string `json:"network"`
		}
		_ = json.Unmarshal(network, &ec)
		cliArgs := []string{"run", "--rm", "--network", ec.Network, e.image, "true"}
		if d.Name == "docker" {
			cliArgs = append([]string{"-H", d.Socket}, cliArgs...)
		}
		vs = append(vs,
			&variant{name: "worker-" + d.Name, run: trueViaWorker(b, e)},
			&variant{name: d.Name + "-run-rm", run: func() {
				if out, err := exec.Command(cliPath, cliArgs...).CombinedOutput(); err != nil {
					b.Fatalf("%s %s: %v: %s", d.Name, strings.Join(cliArgs, " "), err, out)
				}
			}})
	}
	if len(vs) == 0 {
		b.Skip("no daemon set up")
	}
	for _, v := range vs { // warm-up: image present, first network set-up done
		v.run()
	}
	b.ResetTimer()
	for i := range b.N {
		var line []string
		for _, v := range vs {
			t0 := time.Now()
			v.run()
			ms := float64(time.Since(t0).Microseconds()) / 1000
			v.ms = append(v.ms, ms)
			line = append(line, fmt.Sprintf("%s=%.1f", v.name, ms))
		}
		b.Logf("repeat %2d (ms): %s", i+1, strings.Join(line, " "))
	}
	b.StopTimer()
	for _, v := range vs {
		ds := make([]time.Duration, len(v.ms))
		for i, ms := range v.ms {
			ds[i] = time.Duration(ms * float64(time.Millisecond))
		}
		b.ReportMetric(float64(medianOf(ds).Microseconds())/1000, v.name+"-ms/median")
	}
}

// trueViaWorker returns a function running `true` through e's runner in
// run mode; the container's removal (in the background) is waited for, so
// the next measurement starts from the same state as after `run --rm`.
func trueViaWorker(b *testing.B, e *itEnv) func() {
	now := time.Now().UTC()
	raw, _ := json.Marshal(map[string]any{
		"taskQueueId": itPool, "created": now.Format(time.RFC3339), "deadline": now.Add(time.Hour).Format(time.RFC3339),
		"payload":  map[string]any{"image": e.image, "maxRunTime": 60, "command": []string{"true"}},
		"metadata": map[string]string{"name": "true", "description": "d", "owner": "o@example.com", "source": "https://example.com"},
	})
	td, err := worker.ParseTaskFile(raw, now)
	if err != nil {
		b.Fatal(err)
	}
	type waiter interface{ WaitRemovals() }
	return func() {
		res, err := worker.RunLocal(context.Background(), e.runner, worker.LocalRun{TaskID: worker.NewSlugID(), Definition: td, OutputDir: b.TempDir()})
		if err != nil {
			b.Fatal(err)
		}
		if res.Outcome.Resolution.String() != "completed" {
			b.Fatalf("true via the worker: %s", res.Outcome.Resolution)
		}
		e.runner.Engine.(waiter).WaitRemovals()
	}
}
