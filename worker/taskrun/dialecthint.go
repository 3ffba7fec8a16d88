package taskrun

import (
	"fmt"
	"slices"
	"strings"

	"github.com/workergen/workergen/task"
)

// DialectProfiles names shipped profiles of each family of payload
// dialects (true: docker-worker's, false: generic-worker's), for the hint
// that a payload was written for the other family; a test checks them
// against profiles/.
var DialectProfiles = map[bool][]string{
	true:  {"linux-docker", "linux-podman"},
	false: {"linux-native", "linux-multiuser", "windows-multiuser"},
}

// DialectHint returns the first reason of a payload the profile's dialect
// refuses when the payload is recognisably one of the other family's:
// docker-worker's (`image`, which generic-worker payloads never have, with
// `cache`, `capabilities`, `log`, `artifacts` as a map or `command` as a list
// of strings) given to a generic-worker dialect, or generic-worker's
// (`command` as a list of commands, `mounts`, `osGroups`, `logs`,
// `artifacts` as a list, and no `image`) given to docker-worker's. It
// names the fields that told and the kind of profile to use; "" when the
// payload does not look like the other family's (then only the schema's
// problems are listed). Fields are upstream's payload schemas'
// (docker-worker v1/payload.json, generic-worker insecure_posix.json and
// multiuser_windows.json).
func DialectHint(d task.Dialect, profile string, payload map[string]any) string {
	if !d.IsDockerWorker() && !strings.HasPrefix(string(d), "generic-worker") {
		return "" // hello, or none given
	}
	var fields []string
	var other string
	if d.IsDockerWorker() {
		if _, ok := payload["image"]; ok {
			return ""
		}
		fields = genericWorkerFields(payload)
		other = "a generic-worker payload"
	} else {
		if _, ok := payload["image"]; !ok || len(genericWorkerFields(payload)) > 0 {
			return ""
		}
		fields = dockerWorkerFields(payload, d)
		other = "a docker-worker payload"
	}
	if len(fields) == 0 {
		return ""
	}
	own, kind := "generic-worker payloads", "a container profile"
	if d.IsDockerWorker() {
		own, kind = "docker-worker payloads", "a native profile"
	}
	names := DialectProfiles[!d.IsDockerWorker()]
	list := strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
	return fmt.Sprintf("payload: this looks like %s (%s); this worker's profile %s runs %s: use %s such as %s",
		other, strings.Join(fields, ", "), profile, own, kind, list)
}

// dockerWorkerFields lists the fields of payload only docker-worker
// payloads have, `image` first.
func dockerWorkerFields(payload map[string]any, d task.Dialect) []string {
	fields := []string{"image"}
	for _, k := range []string{"cache", "capabilities", "log"} {
		if _, ok := payload[k]; ok {
			fields = append(fields, k)
		}
	}
	if _, ok := payload["artifacts"].(map[string]any); ok {
		fields = append(fields, "artifacts as a map of names")
	}
	// generic-worker's Windows payload has a list of strings as its command.
	if d != task.DialectGenericWorkerWindows && isStrings(payload["command"]) {
		fields = append(fields, "command as a list of strings")
	}
	return fields
}

// genericWorkerFields lists the fields of payload only generic-worker
// payloads have.
func genericWorkerFields(payload map[string]any) []string {
	var fields []string
	if cmds, ok := payload["command"].([]any); ok && len(cmds) > 0 && !slices.ContainsFunc(cmds, func(c any) bool { _, ok := c.([]any); return !ok }) {
		fields = append(fields, "command as a list of commands")
	}
	for _, k := range []string{"mounts", "osGroups", "logs", "taskclusterProxyInterval"} {
		if _, ok := payload[k]; ok {
			fields = append(fields, k)
		}
	}
	if _, ok := payload["artifacts"].([]any); ok {
		fields = append(fields, "artifacts as a list")
	}
	return fields
}

// isStrings reports whether v is a non-empty JSON array of strings.
func isStrings(v any) bool {
	list, ok := v.([]any)
	if !ok || len(list) == 0 {
		return false
	}
	for _, e := range list {
		if _, ok := e.(string); !ok {
			return false
		}
	}
	return true
}
