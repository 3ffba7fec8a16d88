package worker

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/workergen/workergen/task"
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
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return task.Definition{}, fmt.Errorf("not valid JSON or YAML: %w", err)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(js, &top); err != nil {
		return task.Definition{}, fmt.Errorf("a task file holds a JSON/YAML object (a task definition or a payload): %w", err)
	}
	for k := range top {
		if strings.HasPrefix(k, "x-") {
			delete(top, k)
		}
	}
	// No payload dialect has a top-level "payload" object, so an object
	// with one is a task definition (queue/v1 create-task-request.json).
	isDef := false
	if p, ok := top["payload"]; ok && bytes.HasPrefix(bytes.TrimSpace(p), []byte("{")) {
		isDef = true
	}
	var def task.Definition
	if isDef {
		clean, _ := json.Marshal(top)
		if err := json.Unmarshal(clean, &def); err != nil {
			return task.Definition{}, fmt.Errorf("task definition: %w", err)
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
	return def, nil
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
