package container

import (
	"encoding/json"
	"testing"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/engines/enginetest"
)

// TestConformance runs the engine contract's suite against Podman.
func TestConformance(t *testing.T) {
	podmanSocket(t)
	enginetest.Run(t, enginetest.Harness{
		New: func(t *testing.T) engines.Engine {
			e := newTestEngine(t, nil)
			return e
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
		Background:  true,
		MaxEnvEntry: MaxEnvEntry,
		Abilities: []engines.Ability{engines.AbilityHostAddress, engines.AbilityHostName,
			engines.AbilityImageInfo, engines.AbilityInteractiveShell, engines.AbilitySandboxAddress, engines.AbilityVolumes},
		Kind: "container",
	})
}
