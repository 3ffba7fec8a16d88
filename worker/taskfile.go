package worker

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/workergen/workergen/task"
	"github.com/workergen/workergen/worker/config"
)

var placeholder = regexp.MustCompile(`\{\{\s*now\s*(?:([+-])\s*(\d+)\s*([smhd]))?\s*\}\}`)

// ParseTaskFile reads a task for `run`: a full Taskcluster task definition
// (queue/v1 create-task-request.json shape) or a bare payload, as JSON or
// YAML. Top-level `x-*` keys are dropped. Time placeholders `{{now}}` and
// `{{now+<N><unit>}}` / `{{now-<N><unit>}}` (unit s, m, h or d), as used in
// shared task corpora, become ISO-8601 UTC times relative to now. Missing
// times default to created = now, deadline = created + 24h, expires =
// deadline + 1 year (the Queue's default); taskGroupId defaults to the task
// id.
func ParseTaskFile(data []byte, now time.Time) (task.Definition, error) {
	data = placeholder.ReplaceAllFunc(data, func(m []byte) []byte {
		sub := placeholder.FindSubmatch(m)
		t := now
		if len(sub[1]) > 0 {
			n, _ := strconv.Atoi(string(sub[2]))
			d := time.Duration(n) * map[string]time.Duration{"s": time.Second, "m": time.Minute, "h": time.Hour, "d": 24 * time.Hour}[string(sub[3])]
			if string(sub[1]) == "-" {
				d = -d
			}
			t = t.Add(d)
		}
		return []byte(t.UTC().Format("2006-01-02T15:04:05.000Z"))
	})
	if m := leftover.Find(data); m != nil {
		return task.Definition{}, fmt.Errorf("unsupported time placeholder %q: use {{now}}, {{now+<N><unit>}} or {{now-<N><unit>}} with one unit of s, m, h or d (e.g. {{now+90m}})", m)
	}
	js, err := config.YAMLToJSON(data)
	if errors.Is(err, config.ErrManyDocuments) {
		return task.Definition{}, fmt.Errorf("the task file %w", err)
	}
	if err != nil {
		return task.Definition{}, fmt.Errorf("not valid JSON or YAML: %w", err)
	}
	if t := bytes.TrimSpace(js); len(t) == 0 || bytes.Equal(t, []byte("null")) {
		return task.Definition{}, fmt.Errorf("the task file is empty: write a task definition (with a payload) or a bare payload")
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(js, &top); err != nil {
		return task.Definition{}, fmt.Errorf("a task file holds one object, a task definition or a bare payload; this one holds %s", jsonKindOf(js))
	}
	for k := range top {
		if strings.HasPrefix(k, "x-") {
			delete(top, k)
		}
	}
	// No payload dialect has a top-level "payload" field, so an object with
	// one is a task definition (queue/v1 create-task-request.json).
	var def task.Definition
	if raw, ok := top["payload"]; ok {
		if !bytes.HasPrefix(bytes.TrimSpace(raw), []byte("{")) {
			return task.Definition{}, fmt.Errorf("payload: must be an object (the task's payload), got %s", jsonKindOf(raw))
		}
		if err := decodeDefinition(top, &def); err != nil {
			return task.Definition{}, err
		}
	} else {
		clean, _ := json.Marshal(top)
		def.Payload = clean
	}
	if def.Created.IsZero() {
		def.Created = now.UTC().Truncate(time.Millisecond)
	}
	if def.Deadline.IsZero() {
		def.Deadline = def.Created.Add(24 * time.Hour)
	}
	if def.Expires.IsZero() {
		def.Expires = def.Deadline.AddDate(1, 0, 0)
	}
	if def.Priority == "" {
		def.Priority = "lowest"
	}
	switch {
	case def.Deadline.Before(def.Created):
		return task.Definition{}, fmt.Errorf("deadline: %s is before created %s", def.Deadline.Format(time.RFC3339), def.Created.Format(time.RFC3339))
	case def.Expires.Before(def.Deadline):
		return task.Definition{}, fmt.Errorf("expires: %s is before the deadline %s; a task must not expire before its deadline", def.Expires.Format(time.RFC3339), def.Deadline.Format(time.RFC3339))
	case !def.Deadline.After(now):
		return task.Definition{}, fmt.Errorf("deadline: %s has passed; give a later deadline, e.g. \"{{now+1h}}\"", def.Deadline.Format(time.RFC3339))
	}
	return def, nil
}

// leftover finds a {{...}} the placeholder pattern did not take.
var leftover = regexp.MustCompile(`\{\{[^}]*\}\}`)

// definitionFields are the members of a task definition
// (queue/v1 create-task-request.json) and where ParseTaskFile puts them.
func definitionFields(d *task.Definition) map[string]any {
	return map[string]any{
		"provisionerId": &d.ProvisionerID, "workerType": &d.WorkerType, "taskQueueId": &d.TaskQueueID,
		"schedulerId": &d.SchedulerID, "projectId": &d.ProjectID, "taskGroupId": &d.TaskGroupID,
		"dependencies": &d.Dependencies, "requires": &d.Requires, "routes": &d.Routes, "priority": &d.Priority,
		"retries": &d.Retries, "created": &d.Created, "deadline": &d.Deadline, "expires": &d.Expires,
		"scopes": &d.Scopes, "payload": &d.Payload, "metadata": &d.Metadata, "tags": &d.Tags, "extra": &d.Extra,
	}
}

// decodeDefinition decodes each member of a task definition, naming the
// member in errors and refusing unknown ones.
func decodeDefinition(top map[string]json.RawMessage, d *task.Definition) error {
	fields := definitionFields(d)
	var errs []string
	keys := make([]string, 0, len(top))
	for k := range top {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		dst, ok := fields[k]
		if !ok {
			known := make([]string, 0, len(fields))
			for f := range fields {
				known = append(known, f)
			}
			sort.Strings(known)
			errs = append(errs, fmt.Sprintf("%s: not a task definition field (known: %s; x-* keys are ignored)", k, strings.Join(known, ", ")))
			continue
		}
		if err := json.Unmarshal(top[k], dst); err != nil {
			var te *json.UnmarshalTypeError
			var pe *time.ParseError
			switch {
			case errors.As(err, &te):
				errs = append(errs, fmt.Sprintf("%s: got %s, want %s", k, te.Value, jsonTypeName(te.Type.String())))
			case errors.As(err, &pe):
				errs = append(errs, fmt.Sprintf("%s: %q is not an ISO-8601 time such as 2026-01-02T15:04:05.000Z (or a {{now+1h}} placeholder)", k, pe.Value))
			default:
				errs = append(errs, fmt.Sprintf("%s: %v", k, err))
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("task definition:\n  %s", strings.Join(errs, "\n  "))
	}
	return nil
}

func jsonTypeName(goType string) string {
	switch {
	case strings.HasPrefix(goType, "[]"):
		return "an array"
	case strings.HasPrefix(goType, "map["), strings.HasPrefix(goType, "task."):
		return "an object"
	case goType == "string", goType == "time.Time":
		return "a string"
	case goType == "int":
		return "an integer"
	}
	return goType
}

func jsonKindOf(raw []byte) string {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return "invalid JSON"
	}
	return config.JSONKind(v)
}

// NewSlugID returns a random Taskcluster slugid: 22 characters of URL-safe
// base64 (no padding) encoding a v4 UUID, "nice" form (first character is
// never '-').
func NewSlugID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
	b[0] &= 0x7f            // nice: first base64 character is in A-Za-f
	return base64.RawURLEncoding.EncodeToString(b[:])
}
