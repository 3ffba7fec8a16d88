package container

import (
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
	e := newTestEngine(t, map[string]any{"allowDevices": map[string]bool{"kvm": true}})
	p := payload(t, "true")
	p["capabilities"] = map[string]any{"devices": map[string]bool{"kvm": true, "loopbackVideo": true}}
	p["features"] = map[string]any{"allowPtrace": true}
	_, err := e.NewSandboxBuilder(testCtx(t), newRun(t, e, p).tc)
	wantException(t, err, task.ReasonMalformedPayload,
		"payload.capabilities.devices.kvm: task lacks scope docker-worker:capability:device:kvm",
		"payload.capabilities.devices.loopbackVideo: not allowed",
		"payload.features.allowPtrace: not allowed")
}
