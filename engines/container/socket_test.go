package container_test

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/engines/container"
	"github.com/workergen/workergen/gen"
)

// TestProfileDefaultSockets: each container profile's default socket is
// its daemon's standard one.
func TestProfileDefaultSockets(t *testing.T) {
	for profile, want := range map[string]string{
		"linux-docker": "unix:///var/run/docker.sock",
		"linux-podman": "unix:///run/podman/podman.sock",
	} {
		p, err := gen.Resolve(repoRoot(t), profile)
		if err != nil {
			t.Fatal(err)
		}
		var def struct {
			Engine struct {
				Socket string `json:"socket"`
			} `json:"engine"`
		}
		if err := json.Unmarshal(p.DefaultConfig, &def); err != nil {
			t.Fatal(err)
		}
		if def.Engine.Socket != want {
			t.Errorf("%s: default engine.socket %q, want %q", profile, def.Engine.Socket, want)
		}
	}
}

// TestUnreachableSocket: without a daemon on the socket, the engine does
// not start, and says which socket it tried and which config key sets
// another.
func TestUnreachableSocket(t *testing.T) {
	sock := "unix://" + filepath.Join(t.TempDir(), "docker.sock")
	raw, _ := json.Marshal(map[string]any{"socket": sock})
	_, err := container.NewEngine(engines.Options{Config: raw})
	if err == nil {
		t.Fatal("NewEngine without a daemon succeeded")
	}
	for _, want := range []string{`"` + sock + `"`, "engine.socket", "--config"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}
