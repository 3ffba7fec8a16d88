package worker

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/plugins/mounts"
	"github.com/workergen/workergen/task"
)

// TestRunExitCodesDocumented: the `run TASK_FILE` column of the README's
// exit code table and `run -h` both say what RunExitCodes says, and every
// other row of the README table has no `run TASK_FILE` event.
func TestRunExitCodesDocumented(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	_, sec, ok := strings.Cut(string(readme), "\n## Exit codes\n")
	require.True(t, ok)
	sec, _, _ = strings.Cut(sec, "\n## ")
	row := regexp.MustCompile(`(?m)^\| (\d+) \| ([^|]*) \|`)
	documented := map[int]string{}
	for _, m := range row.FindAllStringSubmatch(sec, -1) {
		code, _ := strconv.Atoi(m[1])
		documented[code] = m[2]
	}
	want := map[int]string{}
	for _, c := range RunExitCodes {
		want[c.Code] = c.Meaning
		assert.Equal(t, c.Meaning, documented[c.Code], "README exit code %d, column run TASK_FILE", c.Code)
	}
	for code, meaning := range documented {
		if _, ok := want[code]; !ok {
			assert.Equal(t, "–", meaning, "README exit code %d has a run TASK_FILE event RunExitCodes lacks", code)
		}
	}

	var stdout, stderr strings.Builder
	assert.Equal(t, 0, MainArgs(testBuild(), []string{"run", "-h"}, &stdout, &stderr))
	help := strings.Join(strings.Fields(stdout.String()), " ")
	assert.Empty(t, stderr.String(), "help asked for goes to stdout")
	for _, c := range RunExitCodes {
		assert.Contains(t, help, strconv.Itoa(c.Code)+" "+c.Meaning, "run -h")
	}
}

// TestRunExitCode: each resolution's code.
func TestRunExitCode(t *testing.T) {
	for _, c := range []struct {
		r    task.Resolution
		code int
	}{
		{task.Resolution{State: task.Completed}, ExitCompleted},
		{task.Resolution{State: task.Failed}, ExitFailed},
		{task.Resolution{State: task.Exception, Reason: task.ReasonMalformedPayload}, ExitUsage},
		{task.Resolution{State: task.Exception, Reason: task.ReasonInternalError}, ExitInternal},
		{task.Resolution{State: task.Exception, Reason: task.ReasonWorkerShutdown}, ExitSignal},
		{task.Resolution{State: task.Exception, Reason: task.ReasonResourceUnavailable}, ExitException},
		{task.Resolution{State: task.Exception, Reason: task.ReasonIntermittentTask}, ExitException},
	} {
		assert.Equal(t, c.code, RunExitCode(c.r), "%s", c.r)
	}
}

// TestRunPluginConfigTypo: a typo in a plugin's config section that the
// config schema lets through (here the test build's open `plugins`
// object; a third-party plugin's schema may be open too) is refused by
// the plugin with the field meant, and `run` exits 73 (invalid config).
func TestRunPluginConfigTypo(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "worker.yml")
	require.NoError(t, os.WriteFile(cfg, []byte("plugins:\n  mounts: {minFreeByte: 1}\n"), 0o644))
	taskFile := filepath.Join(dir, "task.yml")
	require.NoError(t, os.WriteFile(taskFile, []byte("exit: 0\n"), 0o644))
	b := testBuild()
	b.Engine = EngineEntry{Name: "fake", New: func(engines.Options) (engines.Engine, error) { return newFakeEngine(), nil }}
	b.PayloadSchema = []byte(fakeSchema)
	b.Plugins = []PluginEntry{{Name: "mounts", New: mounts.New}}
	var stdout, stderr strings.Builder
	code := MainArgs(b, []string{"run", "--config", cfg, "--output", filepath.Join(dir, "out"), taskFile}, &stdout, &stderr)
	assert.Equal(t, ExitInvalidConfig, code, stderr.String())
	assert.Contains(t, stderr.String(), `plugin mounts (config key plugins.mounts): plugins.mounts: decoding config: unknown field "minFreeByte"; did you mean "minFreeBytes"?`)
}

// TestSubcommandHelpOnStdout: help asked for of a subcommand goes to
// stdout with exit 0, as the top-level --help does; a bad flag's usage
// goes to stderr with ExitUsage.
func TestSubcommandHelpOnStdout(t *testing.T) {
	for _, cmd := range []string{"run", "work", "new-ed25519-keypair"} {
		var stdout, stderr strings.Builder
		assert.Equal(t, 0, MainArgs(testBuild(), []string{cmd, "-h"}, &stdout, &stderr), cmd)
		assert.Contains(t, stdout.String(), "-", cmd)
		assert.Empty(t, stderr.String(), cmd)

		stdout.Reset()
		stderr.Reset()
		assert.Equal(t, ExitUsage, MainArgs(testBuild(), []string{cmd, "-bogus"}, &stdout, &stderr), cmd)
		assert.Contains(t, stderr.String(), "-bogus", cmd)
		assert.Empty(t, stdout.String(), cmd)
	}
}
