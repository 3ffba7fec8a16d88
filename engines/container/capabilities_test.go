package container

import (
	"strconv"
	"strings"
	"testing"

	"github.com/workergen/workergen/task"
)

func TestPrivileged(t *testing.T) {
	p := payload(t, "sh", "-c", "grep CapEff /proc/self/status")
	p["capabilities"] = map[string]any{"privileged": true}

	refusing := newTestEngine(t, nil)
	_, err := refusing.NewSandboxBuilder(testCtx(t), newRun(t, refusing, p, "docker-worker:capability:privileged").tc)
	wantException(t, err, task.ReasonMalformedPayload, "payload.capabilities.privileged", "not allowed")

	e := newTestEngine(t, map[string]any{"allowPrivileged": true})
	_, err = e.NewSandboxBuilder(testCtx(t), newRun(t, e, p).tc)
	wantException(t, err, task.ReasonMalformedPayload, "payload.capabilities.privileged", "docker-worker:capability:privileged")

	r := newRun(t, e, p, "docker-worker:capability:privileged:"+e.worker.WorkerPoolID)
	res := runTask(t, e, r, nil)
	if !res.Success() || !strings.Contains(r.log.String(), "CapEff:\t000001ffffffffff") && !strings.Contains(r.log.String(), "CapEff:\t0000003fffffffff") {
		// The full set depends on the kernel; an unprivileged container
		// has 00000000a80425fb.
		if strings.Contains(r.log.String(), "a80425fb") {
			t.Fatalf("container not privileged; log:\n%s", r.log.String())
		}
	}
}

func TestDevicesAndPtraceGated(t *testing.T) {
	e := newTestEngine(t, map[string]any{"allowDevices": map[string]bool{"kvm": true}, "allowPtrace": false})
	p := payload(t, "true")
	p["capabilities"] = map[string]any{"devices": map[string]bool{"kvm": true, "loopbackVideo": true}}
	p["features"] = map[string]any{"allowPtrace": true}
	_, err := e.NewSandboxBuilder(testCtx(t), newRun(t, e, p).tc)
	wantException(t, err, task.ReasonMalformedPayload,
		"payload.capabilities.devices.kvm: task lacks scope docker-worker:capability:device:kvm",
		"payload.capabilities.devices.loopbackVideo: not allowed",
		"payload.features.allowPtrace: not allowed")
}

// TestPtraceOnDefaultConfig follows docker-worker v99.2.1 (config.yml
// defaults: features.allowPtrace.enabled true; features/allow_ptrace.js
// checks only the scope docker-worker:feature:allowPtrace; task.js adds
// CapAdd SYS_PTRACE): on the default engine config a task with just the
// scope runs with CAP_SYS_PTRACE.
func TestPtraceOnDefaultConfig(t *testing.T) {
	e := newTestEngine(t, nil)
	p := payload(t, "sh", "-c", "grep CapEff /proc/self/status")
	p["features"] = map[string]any{"allowPtrace": true}
	r := newRun(t, e, p, "docker-worker:feature:allowPtrace")
	res := runTask(t, e, r, nil)
	log := r.log.String()
	_, hex, ok := strings.Cut(log, "CapEff:\t")
	if !res.Success() || !ok || len(hex) < 16 {
		t.Fatalf("task failed or no CapEff; log:\n%s", log)
	}
	eff, err := strconv.ParseUint(hex[:16], 16, 64)
	if err != nil {
		t.Fatal(err)
	}
	const capSysPtrace = 19
	if eff&(1<<capSysPtrace) == 0 {
		t.Errorf("CAP_SYS_PTRACE missing from CapEff %s", hex[:16])
	}
}
