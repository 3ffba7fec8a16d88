package container

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/workergen/workergen/task"
)

func TestDecodePayload(t *testing.T) {
	cfg, err := ParseConfig(json.RawMessage(`{"allowPrivileged": true, "allowDevices": {"kvm": true}}`))
	if err != nil {
		t.Fatal(err)
	}
	tc := &task.Context{Worker: task.WorkerInfo{WorkerPoolID: "proj/pool"}}
	for _, c := range []struct {
		name    string
		payload string
		scopes  []string
		want    string // substring of the error; "" for success
	}{
		{"string image", `{"image": "ubuntu:22.04", "maxRunTime": 1}`, nil, ""},
		{"docker-image", `{"image": {"type": "docker-image", "name": "ubuntu"}}`, nil, ""},
		{"indexed-image", `{"image": {"type": "indexed-image", "namespace": "a.b", "path": "public/i.tar"}}`, nil, ""},
		{"task-image", `{"image": {"type": "task-image", "taskId": "x", "path": "public/i.tar.zst"}}`, nil, ""},
		{"bad reference", `{"image": "no spaces allowed"}`, nil, "payload.image: \"no spaces allowed\" is not a valid image reference"},
		{"no image", `{"maxRunTime": 1}`, nil, "payload.image: required"},
		{"cache without scope", `{"image": "a", "cache": {"c1": "/c"}}`, nil, `payload.cache["c1"]: task lacks scope docker-worker:cache:c1`},
		{"cache star scope", `{"image": "a", "cache": {"c1": "/c"}}`, []string{"docker-worker:cache:*"}, ""},
		{"cache relative", `{"image": "a", "cache": {"c1": "c"}}`, []string{"docker-worker:*"}, `must be absolute`},
		{"privileged", `{"image": "a", "capabilities": {"privileged": true}}`, []string{"docker-worker:capability:privileged"}, ""},
		{"privileged pool scope", `{"image": "a", "capabilities": {"privileged": true}}`, []string{"docker-worker:capability:privileged:proj/pool"}, ""},
		{"privileged other pool", `{"image": "a", "capabilities": {"privileged": true}}`, []string{"docker-worker:capability:privileged:proj/other"}, "task lacks scope docker-worker:capability:privileged"},
		{"kvm", `{"image": "a", "capabilities": {"devices": {"kvm": true}}}`, []string{"docker-worker:capability:device:kvm"}, ""},
		{"shm not allowed", `{"image": "a", "capabilities": {"devices": {"hostSharedMemory": true}}}`, []string{"docker-worker:capability:device:hostSharedMemory"}, "payload.capabilities.devices.hostSharedMemory: not allowed"},
		// docker-worker v99 config.yml: features.allowPtrace enabled by default; the scope is the gate.
		{"ptrace by default", `{"image": "a", "features": {"allowPtrace": true}}`, []string{"docker-worker:feature:allowPtrace"}, ""},
		{"ptrace without scope", `{"image": "a", "features": {"allowPtrace": true}}`, nil, "payload.features.allowPtrace: task lacks scope docker-worker:feature:allowPtrace"},
		{"seccomp not allowed", `{"image": "a", "capabilities": {"disableSeccomp": true}}`, []string{"*"}, "payload.capabilities.disableSeccomp: not allowed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			tc.Definition = task.Definition{Payload: json.RawMessage(c.payload), Scopes: c.scopes}
			_, err := decodePayload(context.Background(), tc.Definition.Payload, cfg, tc)
			if c.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error = %v, want it to contain %q", err, c.want)
			}
			if ee, ok := err.(*task.ExceptionError); !ok || ee.Reason != task.ReasonMalformedPayload {
				t.Fatalf("error %v is not malformed-payload", err)
			}
		})
	}
}

func TestParseConfig(t *testing.T) {
	c, err := ParseConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.PullTimeout != DefaultPullTimeout || c.PullPolicy != "missing" || c.ImageGC.MinFreeBytes != DefaultMinFreeBytes || c.Socket == "" {
		t.Fatalf("defaults not applied: %+v", c)
	}
	for _, bad := range []string{`{"sockt": "x"}`, `{"pullPolicy": "sometimes"}`, `{"pullTimeout": -1}`, `{"memoryLimit": -5}`} {
		if _, err := ParseConfig(json.RawMessage(bad)); err == nil {
			t.Errorf("ParseConfig(%s) accepted", bad)
		}
	}
}

func TestHelpers(t *testing.T) {
	for _, c := range []struct {
		in   string
		want string
		ok   bool
	}{
		{"d", "", false}, {"d/", "", false}, {"d/a", "a", true}, {"./d/a/b", "a/b", true}, {"d/../x", "", false},
	} {
		got, ok := relName(c.in)
		if got != c.want || ok != c.ok {
			t.Errorf("relName(%q) = %q, %v", c.in, got, ok)
		}
	}
	if !walkLess("sub/n", "sub-x/y") || walkLess("sub-x/y", "sub/n") || !walkLess("a", "b") || !walkLess("a/b", "a/c") {
		t.Error("walkLess does not follow fs.WalkDir order")
	}
	got := parseLoaded("Loaded image: localhost/a:1\nLoaded image(s): b:2,c:3\nLoaded image ID: sha256:abc\n")
	if strings.Join(got, " ") != "localhost/a:1 b:2 c:3 sha256:abc" {
		t.Errorf("parseLoaded = %v", got)
	}
	if code, ok := execFailure(errString(`runc create failed: exec: "/x": stat /x: no such file or directory: OCI runtime attempted to invoke a command that was not found`)); !ok || code != 127 {
		t.Errorf("execFailure(not found) = %d, %v", code, ok)
	}
	if _, ok := execFailure(errString("no space left on device")); ok {
		t.Error("execFailure matched an unrelated error")
	}
	if taskImageTag("a", "b") == taskImageTag("a", "c") || !strings.HasPrefix(taskImageTag("a", "b"), taskImageRepo+":") {
		t.Error("taskImageTag not distinct")
	}
}

type errString string

func (e errString) Error() string { return string(e) }

func TestRegistryAuth(t *testing.T) {
	cfg, err := ParseConfig(json.RawMessage(`{"registries": {"docker.io": {"username": "u", "password": "p"}, "localhost:5000": {"username": "l", "password": "q"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	s := &images{cfg: cfg}
	for ref, wantUser := range map[string]string{"ubuntu:22.04": "u", "docker.io/library/ubuntu": "u", "localhost:5000/x/y:1": "l", "ghcr.io/a/b": ""} {
		enc, err := s.registryAuth(ref)
		if err != nil {
			t.Fatal(err)
		}
		if wantUser == "" {
			if enc != "" {
				t.Errorf("%s: credentials sent to a registry without any configured", ref)
			}
			continue
		}
		if enc == "" {
			t.Errorf("%s: no credentials", ref)
			continue
		}
		raw, err := base64.URLEncoding.DecodeString(enc)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(raw), `"username":"`+wantUser+`"`) {
			t.Errorf("%s: auth %s, want user %s", ref, raw, wantUser)
		}
	}
}
