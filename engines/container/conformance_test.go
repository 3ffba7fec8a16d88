package container

import (
	"encoding/json"
	"testing"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/engines/container/daemontest"
	"github.com/workergen/workergen/engines/enginetest"
)

// TestConformance runs the engine contract's suite against each daemon
// (daemontest.ForEach: Podman and Docker).
func TestConformance(t *testing.T) {
	daemontest.ForEach(t, func(t *testing.T, d daemontest.Daemon) { conformance(t, d) })
}

func conformance(t *testing.T, d daemontest.Daemon) {
	enginetest.Run(t, enginetest.Harness{
		New: func(t *testing.T) engines.Engine {
			return newTestEngineOn(t, d, nil)
		},
		Payload: func(t *testing.T, s enginetest.Scenario) json.RawMessage {
			raw, err := json.Marshal(map[string]any{
				"image":      testImage(t),
				"maxRunTime": 600,
				"command":    []string{"sh", "-c", enginetest.ShellScript(s)},
			})
			if err != nil {
				t.Fatal(err)
			}
			return raw
		},
		Background: true,
		// Docker copies a container's stdout and stderr pipes apart (no
		// TTY): their relative order is not kept. Podman's conmon keeps it.
		UnorderedStreams: d.Name == "docker",
		MaxEnvEntry:      MaxEnvEntry,
		Abilities: []engines.Ability{engines.AbilityHostAddress, engines.AbilityHostName,
			engines.AbilityImageInfo, engines.AbilityInteractiveShell, engines.AbilitySandboxAddress, engines.AbilityVolumes},
		Kind: "container",
	})
}
