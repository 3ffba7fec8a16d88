package taskrun

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/workergen/workergen/task"
)

// CheckPayload is the first stage of every run: it rejects a missing or
// non-JSON payload and payload fields this profile lacks (Unsupported),
// then validates the rest against the composed payload schema (when
// Payload is set). A refused payload written for the other family of
// dialects gets a first reason saying so (DialectHint). The error is a *task.ExceptionError of reason
// malformed-payload listing every problem, one `payload.<path>: <problem>`
// reason each, or nil.
func (r *Runner) CheckPayload(payload json.RawMessage) error {
	if len(payload) == 0 {
		return task.MalformedPayload("payload: missing; the task definition has no payload")
	}
	var doc any
	dec := json.NewDecoder(strings.NewReader(string(payload)))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return task.MalformedPayloadf("payload: not valid JSON: %v", err)
	}
	var reasons []string
	hint := ""
	if obj, ok := doc.(map[string]any); ok {
		hint = DialectHint(r.Dialect, r.Info.Profile, obj)
		for _, u := range r.Unsupported {
			if hasPath(obj, u.Path) {
				reasons = append(reasons, fmt.Sprintf("payload.%s: this worker's profile (%s) lacks support for it (it needs %s); run the task on a worker whose profile includes it, or remove the field",
					u.Path, r.Info.Profile, u.Feature))
				deletePath(obj, u.Path) // the schema speaks about the rest
			}
		}
	}
	if r.Payload != nil {
		reasons = append(reasons, r.Payload.ValidateValue("payload", doc)...)
	}
	if len(reasons) > 0 {
		if hint != "" {
			reasons = append([]string{hint}, reasons...)
		}
		return task.MalformedPayload(reasons...)
	}
	return nil
}

// deletePath removes the dot-separated path from obj, and parents it
// leaves empty.
func deletePath(obj map[string]any, path string) {
	head, rest, nested := strings.Cut(path, ".")
	if !nested {
		delete(obj, head)
		return
	}
	if m, ok := obj[head].(map[string]any); ok {
		deletePath(m, rest)
		if len(m) == 0 {
			delete(obj, head)
		}
	}
}

// hasPath reports whether the dot-separated path names a present field
// whose value is not false/null (a feature flag set to false is not a use).
func hasPath(obj map[string]any, path string) bool {
	parts := strings.Split(path, ".")
	var cur any = obj
	for _, p := range parts {
		m, ok := cur.(map[string]any)
		if !ok {
			return false
		}
		cur, ok = m[p]
		if !ok {
			return false
		}
	}
	switch v := cur.(type) {
	case nil:
		return false
	case bool:
		return v
	}
	return true
}
