//go:build unix

package native_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/engines/enginetest"
	"github.com/workergen/workergen/engines/native"
)

func newEngine(t testing.TB, config string) engines.Engine {
	t.Helper()
	e, err := native.New(engines.Options{Config: json.RawMessage(config)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

func shPayload(t *testing.T, s enginetest.Scenario) json.RawMessage {
	b, err := json.Marshal(map[string]any{"command": [][]string{{"/bin/sh", "-c", enginetest.ShellScript(s)}}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// processGone: no such process, or a zombie waiting for its (new) parent.
func processGone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	if runtime.GOOS == "linux" {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return true
		}
		if i := strings.LastIndexByte(string(data), ')'); i > 0 && len(data) > i+2 {
			return data[i+2] == 'Z'
		}
	}
	return false
}

func TestConformance(t *testing.T) {
	maxEntry := 0
	if runtime.GOOS == "linux" {
		maxEntry = 32 * os.Getpagesize()
	}
	// Process groups must contain tasks alone; on Linux cgroups are used
	// too when available.
	for _, config := range []string{`{"cgroups":false}`, `{}`} {
		t.Run(config, func(t *testing.T) {
			enginetest.Run(t, enginetest.Harness{
				New:         func(t *testing.T) engines.Engine { return newEngine(t, config) },
				Payload:     shPayload,
				HostFiles:   true,
				Background:  true,
				ProcessGone: processGone,
				MaxEnvEntry: maxEntry,
				Abilities:   []engines.Ability{engines.AbilityInteractiveShell},
				Kind:        "native",
			})
		})
	}
}
