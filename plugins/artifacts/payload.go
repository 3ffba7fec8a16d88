package artifacts

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"time"

	"github.com/workergen/workergen/plugins"
	"github.com/workergen/workergen/task"
)

// Artifact is one item of upstream's `artifacts` array
// (schemas/generic-worker/insecure_posix.json and multiuser_windows.json).
type Artifact struct {
	// Type is "file" or "directory".
	Type string `json:"type"`
	// Path is the file or directory, relative to the task directory or
	// absolute; forward slashes or backslashes.
	Path string `json:"path"`
	// Name is the artifact name; default: Path with backslashes turned into
	// slashes on Windows (upstream's canonical path). A directory's files
	// become "<name>/<relative path>".
	Name string `json:"name,omitempty"`
	// Expires is an RFC 3339 date-time in [task.deadline, task.expires];
	// default: task.expires.
	Expires string `json:"expires,omitempty"`
	// ContentType overrides the guessed MIME type.
	ContentType string `json:"contentType,omitempty"`
	// ContentEncoding is "gzip" or "identity"; default: see package doc.
	ContentEncoding string `json:"contentEncoding,omitempty"`
	// Optional: a missing file or directory creates no artifact and does
	// not fail the run.
	Optional bool `json:"optional,omitempty"`
}

// Artifact types.
const (
	TypeFile      = "file"
	TypeDirectory = "directory"
)

// DockerWorkerArtifact is one value of docker-worker's `artifacts` map
// (schemas/docker-worker/v1/payload.json, definitions.artifact); the map key
// is the artifact name.
type DockerWorkerArtifact struct {
	// Type is "file", "directory" or "volume" (d2g's: published like a
	// directory; see the package documentation).
	Type string `json:"type"`
	// Path is the file or directory in the container, absolute (a relative
	// path is taken relative to the container's working directory).
	Path string `json:"path"`
	// Expires is an RFC 3339 date-time in [task.deadline, task.expires];
	// default: task.expires.
	Expires string `json:"expires,omitempty"`
}

// TypeVolume is docker-worker's d2g-only artifact type, published like a
// directory.
const TypeVolume = "volume"

// spec is a validated payload artifact.
type spec struct {
	field           string // "payload.artifacts[3]", `payload.artifacts["public/x"]`
	typ             string
	path            string
	name            string
	expires         time.Time
	contentType     string
	contentEncoding string
	optional        bool
	// lenient: a missing path or the wrong kind is an error artifact that
	// does not fail the run (docker-worker).
	lenient bool
	volume  bool // docker-worker type "volume", published as a directory
}

// decodeArtifacts decodes and checks `payload.artifacts` against the task
// definition; every problem is one reason of a malformed-payload error.
func decodeArtifacts(def task.Definition) ([]spec, error) {
	var list []json.RawMessage
	if err := plugins.DecodePayloadField(def.Payload, "artifacts", &list); err != nil {
		return nil, err
	}
	var reasons []string
	specs := make([]spec, 0, len(list))
	names := map[string]string{}
	for i, raw := range list {
		field := fmt.Sprintf("payload.artifacts[%d]", i)
		var a Artifact
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&a); err != nil {
			reasons = append(reasons, fmt.Sprintf("%s: %v", field, err))
			continue
		}
		s := spec{
			field:           field,
			typ:             a.Type,
			path:            a.Path,
			name:            a.Name,
			contentType:     a.ContentType,
			contentEncoding: a.ContentEncoding,
			optional:        a.Optional,
			expires:         def.Expires,
		}
		n := len(reasons)
		if a.Type != TypeFile && a.Type != TypeDirectory {
			reasons = append(reasons, fmt.Sprintf("%s.type: %q is not one of \"file\", \"directory\"", field, a.Type))
		}
		if a.Path == "" {
			reasons = append(reasons, fmt.Sprintf("%s.path: must not be empty", field))
		}
		nameField := field + ".name"
		if s.name == "" {
			s.name = filepath.ToSlash(a.Path)
			nameField = fmt.Sprintf("%s.name (defaulting to the path %q)", field, a.Path)
		}
		if a.Path != "" {
			if err := task.ValidateArtifactName(s.name); err != nil {
				reasons = append(reasons, fmt.Sprintf("%s: %v", nameField, err))
			}
		}
		if a.ContentEncoding != "" && a.ContentEncoding != task.EncodingGzip && a.ContentEncoding != task.EncodingIdentity {
			reasons = append(reasons, fmt.Sprintf("%s.contentEncoding: %q is not one of \"identity\", \"gzip\"", field, a.ContentEncoding))
		}
		if len(a.ContentType) > 255 {
			reasons = append(reasons, fmt.Sprintf("%s.contentType: longer than the Queue's limit of 255 characters", field))
		}
		if a.Expires != "" {
			if exp, reason := checkExpires(def, field, a.Expires); reason != "" {
				reasons = append(reasons, reason)
			} else {
				s.expires = exp
			}
		}
		if len(reasons) > n {
			continue
		}
		if s.typ == TypeFile {
			if prev, dup := names[s.name]; dup {
				reasons = append(reasons, fmt.Sprintf("%s: artifact name %q is already used by %s", field, s.name, prev))
				continue
			}
			names[s.name] = field
		}
		specs = append(specs, s)
	}
	if len(reasons) > 0 {
		return nil, task.MalformedPayload(reasons...)
	}
	return specs, nil
}

// checkExpires parses an artifact's expires and checks it lies within
// [task.deadline, task.expires]; a problem is returned as a reason.
func checkExpires(def task.Definition, field, expires string) (time.Time, string) {
	exp, err := time.Parse(time.RFC3339Nano, expires)
	switch {
	case err != nil:
		return time.Time{}, fmt.Sprintf("%s.expires: %q is not an RFC 3339 date-time", field, expires)
	case !def.Deadline.IsZero() && exp.Before(def.Deadline):
		return time.Time{}, fmt.Sprintf("%s.expires: %s is before the task's deadline %s", field, expires, def.Deadline.UTC().Format(time.RFC3339Nano))
	case !def.Expires.IsZero() && exp.After(def.Expires):
		return time.Time{}, fmt.Sprintf("%s.expires: %s is after the task's expires %s", field, expires, def.Expires.UTC().Format(time.RFC3339Nano))
	}
	return exp, ""
}

// decodeDockerWorkerArtifacts decodes and checks docker-worker's
// `payload.artifacts` map, in the order of the names; every problem is one
// reason of a malformed-payload error. It also returns
// `features.artifacts` (default true).
func decodeDockerWorkerArtifacts(def task.Definition) ([]spec, bool, error) {
	var features struct {
		Artifacts *bool `json:"artifacts"`
	}
	if err := plugins.DecodePayloadField(def.Payload, "features", &features); err != nil {
		return nil, false, err
	}
	enabled := features.Artifacts == nil || *features.Artifacts
	var m map[string]json.RawMessage
	if err := plugins.DecodePayloadField(def.Payload, "artifacts", &m); err != nil {
		return nil, false, err
	}
	var reasons []string
	specs := make([]spec, 0, len(m))
	for _, name := range slices.Sorted(maps.Keys(m)) {
		field := fmt.Sprintf("payload.artifacts[%q]", name)
		var a DockerWorkerArtifact
		dec := json.NewDecoder(bytes.NewReader(m[name]))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&a); err != nil {
			reasons = append(reasons, fmt.Sprintf("%s: %v", field, err))
			continue
		}
		s := spec{field: field, typ: a.Type, path: a.Path, name: name, expires: def.Expires, lenient: true}
		n := len(reasons)
		switch a.Type {
		case TypeFile, TypeDirectory:
		case TypeVolume:
			s.typ, s.volume = TypeDirectory, true
		default:
			reasons = append(reasons, fmt.Sprintf("%s.type: %q is not one of \"file\", \"directory\", \"volume\"", field, a.Type))
		}
		if a.Path == "" {
			reasons = append(reasons, fmt.Sprintf("%s.path: must not be empty", field))
		}
		if err := task.ValidateArtifactName(name); err != nil {
			reasons = append(reasons, fmt.Sprintf("%s: %v", field, err))
		}
		if a.Expires != "" {
			if exp, reason := checkExpires(def, field, a.Expires); reason != "" {
				reasons = append(reasons, reason)
			} else {
				s.expires = exp
			}
		}
		if len(reasons) == n {
			specs = append(specs, s)
		}
	}
	if len(reasons) > 0 {
		return nil, false, task.MalformedPayload(reasons...)
	}
	return specs, enabled, nil
}
