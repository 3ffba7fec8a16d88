package plugintest_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/plugins"
	"github.com/workergen/workergen/plugins/artifacts"
	"github.com/workergen/workergen/plugins/env"
	"github.com/workergen/workergen/plugins/exitstatus"
	"github.com/workergen/workergen/plugins/maxruntime"
	"github.com/workergen/workergen/plugins/tasklog"
	"github.com/workergen/workergen/task"
)

// corpusDir returns ../shared/corpus/real-tasks next to the repository root
// (found by walking up to go.mod), or "" when it is not there.
func corpusDir(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	require.NoError(t, err)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
	c := filepath.Join(dir, "..", "shared", "corpus", "real-tasks")
	if _, err := os.Stat(c); err != nil {
		return ""
	}
	return c
}

var placeholder = regexp.MustCompile(`\{\{now(?:\+(\d+)([smhd]))?\}\}`)

// render substitutes the corpus's {{now}} / {{now+<N><unit>}} placeholders.
func render(data []byte, now time.Time) []byte {
	return placeholder.ReplaceAllFunc(data, func(m []byte) []byte {
		sub := placeholder.FindSubmatch(m)
		at := now
		if len(sub[1]) > 0 {
			n, _ := strconv.Atoi(string(sub[1]))
			unit := map[string]time.Duration{"s": time.Second, "m": time.Minute, "h": time.Hour, "d": 24 * time.Hour}[string(sub[2])]
			at = now.Add(time.Duration(n) * unit)
		}
		return []byte(at.Format(time.RFC3339))
	})
}

// TestCorpusPayloadsDecode feeds every generic-worker task of the real-task
// corpus to the plugins these profiles use: none may reject a payload the
// upstream schema accepts.
func TestCorpusPayloadsDecode(t *testing.T) {
	dir := corpusDir(t)
	if dir == "" {
		t.Skip("../shared/corpus/real-tasks not found")
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	require.NoError(t, err)
	ctors := map[string]plugins.Constructor{
		"env": env.New, "maxruntime": maxruntime.New, "exitstatus": exitstatus.New,
		"artifacts": artifacts.New, "tasklog": tasklog.New,
	}
	ps := map[string]plugins.Plugin{}
	for name, c := range ctors {
		p, err := c(plugins.Options{Worker: plugins.WorkerConfig{MaxTaskRunTime: 86400}})
		require.NoError(t, err)
		ps[name] = p
	}
	now := time.Now().UTC().Truncate(time.Second)
	seen := 0
	for _, f := range files {
		raw, err := os.ReadFile(f)
		require.NoError(t, err)
		var def struct {
			task.Definition
			Worker string `json:"x-worker"`
		}
		require.NoError(t, json.Unmarshal(render(raw, now), &def), f)
		if !strings.HasPrefix(def.Worker, "generic-worker") {
			continue
		}
		seen++
		tc := &task.Context{TaskID: "fSX7BJxeTBeZ7VPAV6yvRg", Definition: def.Definition, TaskDir: t.TempDir()}
		for name, p := range ps {
			tp, err := p.NewTaskPlugin(t.Context(), tc)
			require.NoError(t, err, "%s: plugin %s", filepath.Base(f), name)
			require.NotNil(t, tp)
			require.NoError(t, tp.Dispose(t.Context()))
		}
	}
	require.Positive(t, seen)
}
