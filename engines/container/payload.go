package container

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path"
	"sort"

	"github.com/distribution/reference"
	"github.com/workergen/workergen/task"
)

// Payload is the part of a docker-worker payload the engine owns. Fields
// owned by plugins (env, maxRunTime, artifacts, onExitStatus, log, ...) are
// ignored here.
type Payload struct {
	Image        Image             `json:"image"`
	Command      []string          `json:"command,omitempty"`
	Cache        map[string]string `json:"cache,omitempty"`
	Capabilities Capabilities      `json:"capabilities"`
	Features     Features          `json:"features"`
}

// Capabilities is the payload's `capabilities` object.
type Capabilities struct {
	Privileged     bool    `json:"privileged,omitempty"`
	DisableSeccomp bool    `json:"disableSeccomp,omitempty"`
	Devices        Devices `json:"devices"`
}

// Features holds the payload `features` the engine implements; the others
// belong to plugins.
type Features struct {
	AllowPtrace bool `json:"allowPtrace,omitempty"`
}

// Image kinds (the payload's image `type`).
const (
	ImageRegistry = "docker-image"  // a registry reference (also the plain string form)
	ImageIndexed  = "indexed-image" // an artifact of the task an Index namespace points at
	ImageTask     = "task-image"    // an artifact of a task
)

// Image is the payload's `image`: a plain string is a registry reference
// (Type docker-image, Name set).
type Image struct {
	Type      string `json:"type"`
	Name      string `json:"name,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	Path      string `json:"path,omitempty"`
	TaskID    string `json:"taskId,omitempty"`
}

// UnmarshalJSON accepts the string and the object forms.
func (im *Image) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*im = Image{Type: ImageRegistry, Name: s}
		return nil
	}
	type plain Image
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*im = Image(p)
	return nil
}

// String describes the image for log lines.
func (im Image) String() string {
	switch im.Type {
	case ImageIndexed:
		return fmt.Sprintf("indexed image %s (namespace %s)", im.Path, im.Namespace)
	case ImageTask:
		return fmt.Sprintf("task image %s of task %s", im.Path, im.TaskID)
	default:
		return im.Name
	}
}

// decodePayload decodes and checks the engine's payload fields against the
// engine config and the task's scopes. Problems the task is at fault for
// are returned together as one malformed-payload error.
func decodePayload(ctx context.Context, raw json.RawMessage, cfg Config, tc *task.Context) (Payload, error) {
	var p Payload
	if err := json.Unmarshal(raw, &p); err != nil {
		return Payload{}, task.MalformedPayloadf("payload: %v", err)
	}
	var reasons []string
	bad := func(format string, args ...any) { reasons = append(reasons, fmt.Sprintf(format, args...)) }

	switch p.Image.Type {
	case ImageRegistry:
		if p.Image.Name == "" {
			bad("payload.image: must not be empty")
		} else if _, err := reference.ParseNormalizedNamed(p.Image.Name); err != nil {
			bad("payload.image: %q is not a valid image reference: %v", p.Image.Name, err)
		}
	case ImageIndexed:
		if p.Image.Namespace == "" || p.Image.Path == "" {
			bad("payload.image: indexed-image needs namespace and path")
		}
	case ImageTask:
		if p.Image.TaskID == "" || p.Image.Path == "" {
			bad("payload.image: task-image needs taskId and path")
		}
	case "":
		bad("payload.image: required")
	default:
		bad("payload.image.type: unknown image type %q", p.Image.Type)
	}

	pool := tc.Worker.WorkerPoolID
	names := make([]string, 0, len(p.Cache))
	for name := range p.Cache {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		mnt := p.Cache[name]
		if name == "" {
			bad("payload.cache: cache name must not be empty")
			continue
		}
		if !path.IsAbs(mnt) {
			bad("payload.cache[%q]: mount path %q must be absolute", name, mnt)
		}
		s := "docker-worker:cache:" + name
		ok, err := tc.HasScopes(ctx, s)
		if err == nil && !ok {
			ok, err = tc.HasScopes(ctx, s+":"+pool) // docker-worker v99 buildVolumeBindings
		}
		if err != nil {
			return Payload{}, err
		}
		if !ok {
			bad("payload.cache[%q]: task lacks scope %s", name, s)
		}
	}
	var scopeErr error
	gate := func(field string, requested, allowed bool, scope string) {
		if !requested {
			return
		}
		if !allowed {
			bad("payload.%s: not allowed on this worker (engine config)", field)
			return
		}
		ok, err := tc.HasScopes(ctx, scope)
		if err == nil && !ok {
			ok, err = tc.HasScopes(ctx, scope+":"+pool)
		}
		if err != nil && scopeErr == nil {
			scopeErr = err
		}
		if err == nil && !ok {
			bad("payload.%s: task lacks scope %s", field, scope)
		}
	}
	c := p.Capabilities
	gate("capabilities.privileged", c.Privileged, cfg.AllowPrivileged, "docker-worker:capability:privileged")
	gate("capabilities.disableSeccomp", c.DisableSeccomp, cfg.AllowDisableSeccomp, "docker-worker:capability:disableSeccomp")
	gate("capabilities.devices.kvm", c.Devices.KVM, cfg.AllowDevices.KVM, "docker-worker:capability:device:kvm")
	gate("capabilities.devices.hostSharedMemory", c.Devices.HostSharedMemory, cfg.AllowDevices.HostSharedMemory, "docker-worker:capability:device:hostSharedMemory")
	gate("capabilities.devices.loopbackAudio", c.Devices.LoopbackAudio, cfg.AllowDevices.LoopbackAudio, "docker-worker:capability:device:loopbackAudio")
	gate("capabilities.devices.loopbackVideo", c.Devices.LoopbackVideo, cfg.AllowDevices.LoopbackVideo, "docker-worker:capability:device:loopbackVideo")
	gate("features.allowPtrace", p.Features.AllowPtrace, cfg.AllowPtrace, "docker-worker:feature:allowPtrace")

	if scopeErr != nil {
		return Payload{}, scopeErr
	}
	if len(reasons) > 0 {
		return Payload{}, task.MalformedPayload(reasons...)
	}
	return p, nil
}
