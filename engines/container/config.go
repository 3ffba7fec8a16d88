package container

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/workergen/workergen/internal/suggest"
)

// Config is the engine's section of the worker config (`engine` key).
//
// Example (Podman):
//
//	{"socket": "unix:///run/podman/podman.sock", "allowPrivileged": false,
//	 "allowDevices": {"kvm": true}, "pullTimeout": 300,
//	 "imageGC": {"minFreeBytes": 10737418240}}
type Config struct {
	// Socket is the Docker Engine API endpoint: "unix:///var/run/docker.sock"
	// for Docker, the `podman system service` socket for Podman, or a
	// tcp:// address. Empty means $DOCKER_HOST, else the Docker default.
	Socket string `json:"socket,omitempty"`

	// PullTimeout bounds one image pull or task-image download and load, in
	// seconds. Default 300.
	PullTimeout int `json:"pullTimeout,omitempty"`
	// PullPolicy is "missing" (pull only images not present locally, the
	// default) or "always" (pull registry references before every task).
	PullPolicy string `json:"pullPolicy,omitempty"`

	// AllowPrivileged lets tasks with scope docker-worker:capability:privileged
	// run privileged containers.
	AllowPrivileged bool `json:"allowPrivileged,omitempty"`
	// AllowDevices lets tasks with the matching
	// docker-worker:capability:device:<device> scope have a host device.
	AllowDevices Devices `json:"allowDevices"`
	// AllowPtrace lets tasks with scope docker-worker:feature:allowPtrace use
	// ptrace (adds CAP_SYS_PTRACE). Default true, as docker-worker's
	// (config.yml features.allowPtrace.enabled: the scope is the gate);
	// set false to refuse the feature on this worker.
	AllowPtrace bool `json:"allowPtrace"`
	// AllowDisableSeccomp lets tasks with scope
	// docker-worker:capability:disableSeccomp run without a seccomp profile.
	AllowDisableSeccomp bool `json:"allowDisableSeccomp,omitempty"`

	// LoopbackVideoDevice is the host device given for
	// capabilities.devices.loopbackVideo. Default "/dev/video0".
	LoopbackVideoDevice string `json:"loopbackVideoDevice,omitempty"`
	// LoopbackAudioDevice is the host device (directory) given for
	// capabilities.devices.loopbackAudio. Default "/dev/snd".
	LoopbackAudioDevice string `json:"loopbackAudioDevice,omitempty"`

	// TTY gives the container a terminal, as docker-worker did: stdout and
	// stderr are then one stream and line ends become "\r\n". Default false
	// (output is passed through byte for byte).
	TTY bool `json:"tty,omitempty"`
	// Network is the container network mode ("bridge", "host", "none", or
	// a network name). Empty means the daemon's default. A network name the
	// daemon does not know is created (a bridge) when the engine starts:
	// workers of one host with networks of their own each serve the
	// taskcluster proxy on their own gateway's port 80.
	Network string `json:"network,omitempty"`
	// MemoryLimit caps each container's memory, in bytes; 0 means no limit.
	// A task over it is killed by the kernel and reported as OOM.
	MemoryLimit int64 `json:"memoryLimit,omitempty"`
	// PidsLimit caps the number of processes in a container; 0 or -1 mean
	// unlimited, as docker-worker ran tasks (Podman's own default would be
	// 2048).
	PidsLimit int64 `json:"pidsLimit,omitempty"`

	// ImageGC controls removal of cached images when disk space runs low.
	ImageGC ImageGC `json:"imageGC"`

	// Registries holds credentials for pulling from private registries,
	// keyed by registry host as it appears in normalized image references
	// ("docker.io", "ghcr.io", "registry.example.com:5000").
	Registries map[string]RegistryCredentials `json:"registries,omitempty"`
}

// RegistryCredentials authenticate image pulls from one registry.
type RegistryCredentials struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// Devices names the docker-worker capabilities.devices entries.
type Devices struct {
	KVM              bool `json:"kvm,omitempty"`
	HostSharedMemory bool `json:"hostSharedMemory,omitempty"`
	LoopbackAudio    bool `json:"loopbackAudio,omitempty"`
	LoopbackVideo    bool `json:"loopbackVideo,omitempty"`
}

// ImageGC configures image garbage collection. Before an image is pulled or
// loaded, if the file system holding the daemon's storage (its root dir,
// when it is visible on this host) has less than MinFreeBytes free, images
// the engine used are removed, least recently used first, skipping those in
// use, until there is enough space or nothing left to remove.
type ImageGC struct {
	// Disabled turns image garbage collection off.
	Disabled bool `json:"disabled,omitempty"`
	// MinFreeBytes is the free space to keep, in bytes. Default 10 GiB.
	MinFreeBytes int64 `json:"minFreeBytes,omitempty"`
	// StorageDir overrides the directory whose file system is checked.
	// Default: the daemon's root dir (DockerRootDir) as reported by Info.
	StorageDir string `json:"storageDir,omitempty"`
}

// Defaults.
const (
	DefaultSocket              = "unix:///var/run/docker.sock"
	DefaultPullTimeout         = 300
	DefaultMinFreeBytes        = 10 << 30
	DefaultLoopbackVideoDevice = "/dev/video0"
	DefaultLoopbackAudioDevice = "/dev/snd"
)

// ParseConfig decodes raw (the `engine` config section; empty means all
// defaults), rejects unknown keys and applies defaults.
func ParseConfig(raw json.RawMessage) (Config, error) {
	c := Config{AllowPtrace: true}
	if len(bytes.TrimSpace(raw)) > 0 && !bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&c); err != nil {
			return Config{}, fmt.Errorf("engine config: %w", suggest.UnknownField(err, &c))
		}
	}
	if c.Socket == "" {
		c.Socket = os.Getenv("DOCKER_HOST")
	}
	if c.Socket == "" {
		c.Socket = DefaultSocket
	}
	if c.PullTimeout == 0 {
		c.PullTimeout = DefaultPullTimeout
	}
	if c.PullTimeout < 0 {
		return Config{}, fmt.Errorf("engine config: pullTimeout: must be positive, got %d", c.PullTimeout)
	}
	switch c.PullPolicy {
	case "":
		c.PullPolicy = "missing"
	case "missing", "always":
	default:
		return Config{}, fmt.Errorf(`engine config: pullPolicy: must be "missing" or "always", got %q`, c.PullPolicy)
	}
	if c.MemoryLimit < 0 {
		return Config{}, fmt.Errorf("engine config: memoryLimit: must not be negative, got %d", c.MemoryLimit)
	}
	if c.ImageGC.MinFreeBytes == 0 {
		c.ImageGC.MinFreeBytes = DefaultMinFreeBytes
	}
	if c.LoopbackVideoDevice == "" {
		c.LoopbackVideoDevice = DefaultLoopbackVideoDevice
	}
	if c.LoopbackAudioDevice == "" {
		c.LoopbackAudioDevice = DefaultLoopbackAudioDevice
	}
	return c, nil
}

func (c Config) pullTimeout() time.Duration { return time.Duration(c.PullTimeout) * time.Second }
