package container

import (
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/stretchr/testify/assert"
)

func TestCompileSpec(t *testing.T) {
	unlimited := int64(-1)
	base := func() specInput {
		return specInput{imageID: "sha256:abc", labels: map[string]string{LabelTaskID: "t"}}
	}
	defaultHosts := []string{"localhost.localdomain:127.0.0.1"}
	rwm := func(path string) container.DeviceMapping {
		return container.DeviceMapping{PathOnHost: path, PathInContainer: path, CgroupPermissions: "rwm"}
	}
	for _, tc := range []struct {
		name   string
		in     func(*specInput)
		config func(*container.Config)
		host   func(*container.HostConfig)
	}{
		{name: "defaults"},
		{
			name:   "command",
			in:     func(in *specInput) { in.payload.Command = []string{"sh", "-c", "true"} },
			config: func(c *container.Config) { c.Cmd = []string{"sh", "-c", "true"} },
		},
		{
			name:   "env sorted",
			in:     func(in *specInput) { in.env = map[string]string{"B": "2", "A": "1", "C": "x=y"} },
			config: func(c *container.Config) { c.Env = []string{"A=1", "B=2", "C=x=y"} },
		},
		{
			name:   "tty",
			in:     func(in *specInput) { in.cfg.TTY = true },
			config: func(c *container.Config) { c.Tty = true },
		},
		{
			name: "host names",
			in:   func(in *specInput) { in.hosts = []string{"taskcluster:10.88.0.1"} },
			host: func(h *container.HostConfig) { h.ExtraHosts = []string{defaultHosts[0], "taskcluster:10.88.0.1"} },
		},
		{
			name: "network",
			in:   func(in *specInput) { in.cfg.Network = "none" },
			host: func(h *container.HostConfig) { h.NetworkMode = "none" },
		},
		{
			name: "memory limit without swap",
			in:   func(in *specInput) { in.cfg.MemoryLimit = 64 << 20 },
			host: func(h *container.HostConfig) { h.Memory, h.MemorySwap = 64<<20, 64<<20 },
		},
		{
			name: "pids limit",
			in:   func(in *specInput) { in.cfg.PidsLimit = 100 },
			host: func(h *container.HostConfig) { n := int64(100); h.PidsLimit = &n },
		},
		{
			name: "cache volumes",
			in: func(in *specInput) {
				in.volumes = []volumeMount{{"workergen-cache-1-a", "/cache/a"}, {"workergen-cache-1-b", "/cache/b"}}
			},
			host: func(h *container.HostConfig) {
				h.Mounts = []mount.Mount{
					{Type: mount.TypeVolume, Source: "workergen-cache-1-a", Target: "/cache/a"},
					{Type: mount.TypeVolume, Source: "workergen-cache-1-b", Target: "/cache/b"},
				}
			},
		},
		{
			name: "privileged",
			in:   func(in *specInput) { in.payload.Capabilities.Privileged = true },
			host: func(h *container.HostConfig) { h.Privileged = true },
		},
		{
			name: "no seccomp",
			in:   func(in *specInput) { in.payload.Capabilities.DisableSeccomp = true },
			host: func(h *container.HostConfig) { h.SecurityOpt = []string{"seccomp=unconfined"} },
		},
		{
			name: "ptrace",
			in:   func(in *specInput) { in.payload.Features.AllowPtrace = true },
			host: func(h *container.HostConfig) { h.CapAdd = []string{"SYS_PTRACE"} },
		},
		{
			name: "devices",
			in: func(in *specInput) {
				in.cfg.LoopbackVideoDevice, in.cfg.LoopbackAudioDevice = "/dev/video3", "/dev/snd"
				in.payload.Capabilities.Devices = Devices{KVM: true, LoopbackVideo: true, LoopbackAudio: true}
			},
			host: func(h *container.HostConfig) {
				h.Devices = []container.DeviceMapping{rwm("/dev/kvm"), rwm("/dev/video3"), rwm("/dev/snd")}
			},
		},
		{
			name: "host shared memory after the caches",
			in: func(in *specInput) {
				in.volumes = []volumeMount{{"v", "/cache"}}
				in.payload.Capabilities.Devices.HostSharedMemory = true
			},
			host: func(h *container.HostConfig) {
				h.Mounts = []mount.Mount{
					{Type: mount.TypeVolume, Source: "v", Target: "/cache"},
					{Type: mount.TypeBind, Source: "/dev/shm", Target: "/dev/shm"},
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := base()
			if tc.in != nil {
				tc.in(&in)
			}
			wantConfig := &container.Config{
				Image: "sha256:abc", Env: []string{}, AttachStdout: true, AttachStderr: true,
				Labels: map[string]string{LabelTaskID: "t"},
			}
			if tc.config != nil {
				tc.config(wantConfig)
			}
			wantHost := &container.HostConfig{ExtraHosts: defaultHosts}
			wantHost.PidsLimit = &unlimited
			if tc.host != nil {
				tc.host(wantHost)
			}
			got := compileSpec(in)
			assert.Equal(t, wantConfig, got.config)
			assert.Equal(t, wantHost, got.hostConfig)
			assert.Equal(t, got, compileSpec(in), "same input, same spec")
		})
	}
}
