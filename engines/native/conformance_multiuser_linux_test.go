package native_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/engines/enginetest"
)

// TestConformanceMultiuser runs the engine conformance suite with every
// task as a fresh user (root only). The test's temporary directories are
// made crossable so that task users reach their task directories.
func TestConformanceMultiuser(t *testing.T) {
	requireRoot(t)
	enginetest.Run(t, enginetest.Harness{
		New: func(t *testing.T) engines.Engine {
			dir := t.TempDir()
			for d := filepath.Dir(dir); d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
				_ = os.Chmod(d, 0o711)
			}
			return newEngine(t, `{"multiuser": true}`)
		},
		Payload:     shPayload,
		HostFiles:   true,
		Background:  true,
		ProcessGone: processGone,
		MaxEnvEntry: 32 * os.Getpagesize(),
		Abilities:   []engines.Ability{engines.AbilityInteractiveShell},
		Kind:        "native",
	})
}
