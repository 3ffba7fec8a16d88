package container

import (
	"sort"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
)

// specInput is what a run's container is compiled from: the engine config,
// the payload, and what the builder gathered (plugins' env and host names,
// the cache volumes acquired for the run).
type specInput struct {
	cfg     Config
	payload Payload
	imageID string
	env     map[string]string
	hosts   []string // extra /etc/hosts entries, "name:ip"
	labels  map[string]string
	volumes []volumeMount
}

// volumeMount is a named volume mounted in the container.
type volumeMount struct{ volume, target string }

// spec is the container to create: what ContainerCreate is given.
type spec struct {
	config     *container.Config
	hostConfig *container.HostConfig
}

// compileSpec turns in into the container to create. It does no I/O and
// returns the same spec for the same input (env sorted by name).
func compileSpec(in specInput) spec {
	cfg := &container.Config{
		Image:        in.imageID,
		Env:          envList(in.env),
		Tty:          in.cfg.TTY,
		AttachStdout: true,
		AttachStderr: true,
		Labels:       in.labels,
	}
	if len(in.payload.Command) > 0 {
		cfg.Cmd = in.payload.Command
	}
	hc := &container.HostConfig{
		NetworkMode: container.NetworkMode(in.cfg.Network),
		// docker-worker's containers resolved this name (d2g keeps it).
		ExtraHosts: append([]string{"localhost.localdomain:127.0.0.1"}, in.hosts...),
	}
	limitResources(hc, in.cfg)
	for _, v := range in.volumes {
		hc.Mounts = append(hc.Mounts, mount.Mount{Type: mount.TypeVolume, Source: v.volume, Target: v.target})
	}
	grantCapabilities(hc, in.cfg, in.payload)
	return spec{config: cfg, hostConfig: hc}
}

// envList is env as sorted "NAME=value" entries.
func envList(env map[string]string) []string {
	l := make([]string, 0, len(env))
	for k, v := range env {
		l = append(l, k+"="+v)
	}
	sort.Strings(l)
	return l
}

// limitResources applies the config's memory (no swap on top of it) and
// process limits; a PidsLimit of 0 or less means unlimited (-1).
func limitResources(hc *container.HostConfig, cfg Config) {
	hc.Memory = cfg.MemoryLimit
	if cfg.MemoryLimit > 0 {
		hc.MemorySwap = cfg.MemoryLimit
	}
	pids := cfg.PidsLimit
	if pids <= 0 {
		pids = -1
	}
	hc.PidsLimit = &pids
}

// grantCapabilities applies the payload's capabilities and features, which
// decodePayload has already checked against the config and the task's
// scopes: privileged, no seccomp profile, ptrace, and the host devices.
func grantCapabilities(hc *container.HostConfig, cfg Config, p Payload) {
	caps := p.Capabilities
	hc.Privileged = caps.Privileged
	if caps.DisableSeccomp {
		hc.SecurityOpt = append(hc.SecurityOpt, "seccomp=unconfined")
	}
	if p.Features.AllowPtrace {
		hc.CapAdd = append(hc.CapAdd, "SYS_PTRACE")
	}
	device := func(path string) container.DeviceMapping {
		return container.DeviceMapping{PathOnHost: path, PathInContainer: path, CgroupPermissions: "rwm"}
	}
	if caps.Devices.KVM {
		hc.Devices = append(hc.Devices, device("/dev/kvm"))
	}
	if caps.Devices.LoopbackVideo {
		hc.Devices = append(hc.Devices, device(cfg.LoopbackVideoDevice))
	}
	if caps.Devices.LoopbackAudio {
		hc.Devices = append(hc.Devices, device(cfg.LoopbackAudioDevice))
	}
	if caps.Devices.HostSharedMemory {
		hc.Mounts = append(hc.Mounts, mount.Mount{Type: mount.TypeBind, Source: "/dev/shm", Target: "/dev/shm"})
	}
}
