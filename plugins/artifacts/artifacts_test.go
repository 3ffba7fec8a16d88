package artifacts_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/plugins"
	"github.com/workergen/workergen/plugins/artifacts"
	"github.com/workergen/workergen/plugins/plugintest"
	"github.com/workergen/workergen/task"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type M = map[string]any

func newPlugin(t testing.TB, concurrency int) plugins.Plugin {
	t.Helper()
	p, err := artifacts.New(plugins.Options{Worker: plugins.WorkerConfig{UploadConcurrency: concurrency}})
	require.NoError(t, err)
	return p
}

// run runs a mock task creating files (and symlinks) with the artifacts list.
func run(t *testing.T, files, symlinks map[string]string, list ...M) *plugintest.Result {
	t.Helper()
	return runCase(t, plugintest.Case{}, files, symlinks, list...)
}

func runCase(t *testing.T, c plugintest.Case, files, symlinks map[string]string, list ...M) *plugintest.Result {
	t.Helper()
	if c.Plugins == nil {
		c.Plugins = []plugins.Plugin{newPlugin(t, 0)}
	}
	arts := make([]any, len(list))
	for i, a := range list {
		arts[i] = a
	}
	// The files are written before the run rather than by the mock task:
	// JSON strings cannot carry arbitrary bytes.
	if c.TaskDir == "" {
		c.TaskDir = t.TempDir()
	}
	for name, content := range files {
		p := filepath.Join(c.TaskDir, filepath.FromSlash(name))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	}
	c.Payload = M{"mock": M{"symlinks": symlinks}, "artifacts": arts}
	return plugintest.Run(t, c)
}

func malformed(t *testing.T, res *plugintest.Result) []string {
	t.Helper()
	var ee *task.ExceptionError
	require.ErrorAs(t, res.Err(plugintest.StageNewTaskPlugin), &ee)
	assert.Equal(t, task.ReasonMalformedPayload, ee.Reason)
	assert.Nil(t, res.Builder, "nothing ran")
	assert.Equal(t, task.Resolution{State: task.Exception, Reason: task.ReasonMalformedPayload}, res.Resolution)
	return ee.Reasons
}

func TestFileArtifact(t *testing.T) {
	res := run(t, map[string]string{"out/report.txt": "hello"}, nil,
		M{"type": "file", "path": "out/report.txt", "name": "public/report.txt"},
		M{"type": "file", "path": "out/report.txt"}, // name defaults to the path
	)
	require.Empty(t, res.Errors)
	assert.Equal(t, task.Completed, res.Resolution.State)
	assert.Equal(t, []string{"out/report.txt", "public/report.txt"}, res.ArtifactNames())
	a, ok := res.Artifact("public/report.txt")
	require.True(t, ok)
	assert.Equal(t, task.ArtifactFile, a.Kind)
	assert.Equal(t, "hello", string(a.Content))
	assert.Equal(t, int64(5), a.Size)
	assert.Equal(t, "text/plain; charset=utf-8", a.ContentType)
	assert.Equal(t, "gzip", a.ContentEncoding)
	assert.Equal(t, res.Context.Definition.Expires, a.Expires)
	wantPath, err := filepath.EvalSymlinks(filepath.Join(res.Context.TaskDir, "out/report.txt"))
	require.NoError(t, err)
	assert.Equal(t, wantPath, a.Path)
	assert.Contains(t, res.Log, `artifact "public/report.txt": 5 bytes, text/plain; charset=utf-8, gzip encoding`)
}

func TestDirectoryArtifact(t *testing.T) {
	files := map[string]string{
		"dist/a.txt":         "a",
		"dist/sub/b.json":    `{"b":1}`,
		"dist/sub/deep/c.gz": "\x1f\x8b",
		"other.txt":          "not included",
	}
	res := run(t, files, nil,
		M{"type": "directory", "path": "dist", "name": "public/build/"},
		M{"type": "directory", "path": "dist/sub"},
	)
	require.Empty(t, res.Errors)
	assert.Equal(t, task.Completed, res.Resolution.State)
	assert.Equal(t, []string{
		"dist/sub/b.json", "dist/sub/deep/c.gz",
		"public/build/a.txt", "public/build/sub/b.json", "public/build/sub/deep/c.gz",
	}, res.ArtifactNames())
	b, _ := res.Artifact("public/build/sub/b.json")
	assert.Equal(t, `{"b":1}`, string(b.Content))
	assert.Equal(t, "application/json", b.ContentType)
	assert.Equal(t, "gzip", b.ContentEncoding)
	c, _ := res.Artifact("public/build/sub/deep/c.gz")
	assert.Equal(t, "identity", c.ContentEncoding)
}

func TestContentTypeAndEncoding(t *testing.T) {
	png := "\x89PNG\r\n\x1a\n" + strings.Repeat("\x00", 32)
	files := map[string]string{
		"build.log":    "log line\n",
		"image.png":    png,
		"noext-png":    png,
		"noext-text":   "just some text\n",
		"noext-binary": "\x00\x01\x02\x03\xfe\xff",
		"pkg.tar.gz":   "\x1f\x8b\x08",
		"app.zip":      "PK\x03\x04",
		"notes.txt":    "x",
		"data.bin":     "x",
		"FONT.WOFF2":   "x",
	}
	res := run(t, files, nil,
		M{"type": "file", "path": "build.log"},
		M{"type": "file", "path": "image.png"},
		M{"type": "file", "path": "noext-png"},
		M{"type": "file", "path": "noext-text"},
		M{"type": "file", "path": "noext-binary"},
		M{"type": "file", "path": "pkg.tar.gz"},
		M{"type": "file", "path": "app.zip", "contentEncoding": "gzip"},
		M{"type": "file", "path": "notes.txt", "contentEncoding": "identity", "contentType": "text/markdown"},
		M{"type": "file", "path": "data.bin", "contentType": "application/x-custom"},
		M{"type": "file", "path": "FONT.WOFF2"},
	)
	require.Empty(t, res.Errors)
	want := map[string][2]string{
		"build.log":    {"text/plain; charset=utf-8", "gzip"},
		"image.png":    {"image/png", "identity"},
		"noext-png":    {"image/png", "identity"},
		"noext-text":   {"text/plain; charset=utf-8", "gzip"},
		"noext-binary": {"application/octet-stream", "gzip"},
		"pkg.tar.gz":   {"application/gzip", "identity"},
		"app.zip":      {"application/zip", "gzip"},
		"notes.txt":    {"text/markdown", "identity"},
		"data.bin":     {"application/x-custom", "gzip"},
		"FONT.WOFF2":   {"font/woff2", "identity"},
	}
	for name, w := range want {
		a, ok := res.Artifact(name)
		require.True(t, ok, name)
		assert.Equal(t, files[name], string(a.Content), "%s: sniffing must not eat content", name)
		if name == "pkg.tar.gz" || name == "app.zip" || name == "FONT.WOFF2" {
			// The system's mime.types may name these differently; only
			// the encoding choice is ours.
			assert.Equal(t, w[1], a.ContentEncoding, name)
			continue
		}
		assert.Equal(t, w, [2]string{a.ContentType, a.ContentEncoding}, name)
	}
}

func TestMissing(t *testing.T) {
	res := run(t, nil, nil,
		M{"type": "file", "path": "nope.txt", "name": "public/nope.txt"},
		M{"type": "directory", "path": "nodir", "name": "public/nodir"},
	)
	require.Empty(t, res.Errors)
	assert.Equal(t, task.Failed, res.Resolution.State)
	assert.False(t, res.StoppedOK)
	for _, name := range []string{"public/nope.txt", "public/nodir"} {
		a, ok := res.Artifact(name)
		require.True(t, ok, name)
		assert.Equal(t, task.ArtifactError, a.Kind)
		assert.Equal(t, task.ErrorFileMissingOnWorker, a.Reason)
		assert.NotEmpty(t, a.Message)
		assert.Equal(t, res.Context.Definition.Expires, a.Expires)
	}
	// The run's reasons name each artifact, its entry and path, and how
	// to let it be absent; so does its task log line.
	hint := "mark it `optional: true` in the payload if it may be absent"
	assert.Equal(t, []string{
		`required artifact "public/nope.txt" (payload.artifacts[0]): "nope.txt" was not found; ` + hint,
		`required artifact "public/nodir" (payload.artifacts[1]): "nodir" was not found; ` + hint,
	}, res.Context.Explanations())
	assert.Contains(t, res.Log, `artifact "public/nope.txt": error artifact (file-missing-on-worker): file artifact "public/nope.txt" (payload.artifacts[0]): "nope.txt": `)
	assert.Contains(t, res.Log, "(required: this fails the task; "+hint+")")
}

// TestOptionalMissingIsErrorArtifact follows generic-worker v106
// (artifact_feature.go: the error artifact of an optional artifact is
// uploaded, and only its failure is ignored; seen against a real Queue): a
// missing optional file or directory becomes an `error` artifact
// (file-missing-on-worker), so readers get 424 with the reason instead of
// 404, and the run completes.
func TestOptionalMissingIsErrorArtifact(t *testing.T) {
	res := run(t, map[string]string{"here.txt": "x"}, nil,
		M{"type": "file", "path": "nope.txt", "optional": true},
		M{"type": "directory", "path": "nodir", "optional": true},
		M{"type": "file", "path": "here.txt", "optional": true},
	)
	require.Empty(t, res.Errors)
	assert.Equal(t, task.Completed, res.Resolution.State)
	assert.Equal(t, []string{"here.txt", "nodir", "nope.txt"}, res.ArtifactNames())
	for _, name := range []string{"nope.txt", "nodir"} {
		a, _ := res.Artifact(name)
		assert.Equal(t, task.ArtifactError, a.Kind, name)
		assert.Equal(t, task.ErrorFileMissingOnWorker, a.Reason, name)
	}
	assert.Contains(t, res.Log, `artifact "nope.txt": error artifact (file-missing-on-worker)`)
	assert.Contains(t, res.Log, "(optional: this does not fail the task)")
}

// TestOptionalVanishedDuringWalk: a file of an optional directory artifact
// that vanished while it was collected is treated as a missing optional
// artifact (generic-worker v106, as TestOptionalMissingIsErrorArtifact):
// an error artifact, and the run completes.
func TestOptionalVanishedDuringWalk(t *testing.T) {
	c := plugintest.Case{WrapResult: func(r engines.ResultSet) engines.ResultSet { return vanishing{r, "b.txt"} }}
	res := runCase(t, c, map[string]string{"d/a.txt": "a", "d/b.txt": "b"}, nil,
		M{"type": "directory", "path": "d", "name": "public/d", "optional": true})
	require.Empty(t, res.Errors)
	assert.Equal(t, task.Completed, res.Resolution.State, res.Log)
	b, _ := res.Artifact("public/d/b.txt")
	assert.Equal(t, task.ArtifactError, b.Kind)
	assert.Equal(t, task.ErrorFileMissingOnWorker, b.Reason)
	a, _ := res.Artifact("public/d/a.txt")
	assert.Equal(t, "a", string(a.Content))
}

// TestDuplicateNameFromTwoSources follows generic-worker v106
// (artifacts.go classifyCreateArtifactError: the Queue's 409 for an
// artifact "already uploaded to this task with different content" is
// malformed-payload): a directory artifact and a file artifact publishing
// the same name from different files end the run malformed-payload
// naming both sources, instead of one upload silently replacing the other.
// The same file listed twice is published once.
func TestDuplicateNameFromTwoSources(t *testing.T) {
	files := map[string]string{"out/ok.txt": "in out", "other/ok.txt": "elsewhere"}
	res := run(t, files, nil,
		M{"type": "directory", "path": "out", "name": "public/out"},
		M{"type": "file", "path": "other/ok.txt", "name": "public/out/ok.txt"},
	)
	var ee *task.ExceptionError
	require.ErrorAs(t, res.Err(plugintest.StageStopped), &ee)
	assert.Equal(t, task.Resolution{State: task.Exception, Reason: task.ReasonMalformedPayload}, res.Resolution)
	require.Len(t, ee.Reasons, 1)
	assert.Contains(t, ee.Reasons[0], `"public/out/ok.txt" is published twice`)
	assert.Contains(t, ee.Reasons[0], `payload.artifacts[0] "out/ok.txt"`)
	assert.Contains(t, ee.Reasons[0], `payload.artifacts[1] "other/ok.txt"`)

	res = run(t, files, nil,
		M{"type": "directory", "path": "out", "name": "public/out"},
		M{"type": "file", "path": "out/ok.txt", "name": "public/out/ok.txt"},
	)
	require.Empty(t, res.Errors)
	assert.Equal(t, task.Completed, res.Resolution.State, res.Log)
	a, _ := res.Artifact("public/out/ok.txt")
	assert.Equal(t, "in out", string(a.Content))
	assert.Equal(t, 1, strings.Count(res.Log, `artifact "public/out/ok.txt": 6 bytes`))
}

// identitySink stores everything unencoded, as the Object service does.
type identitySink struct{ *plugintest.Sink }

func (identitySink) StoredEncoding(task.Artifact) string { return "identity" }

// TestLogSaysStoredEncoding: the task log names the encoding the sink
// sent (object artifacts are stored unencoded), not the one chosen.
func TestLogSaysStoredEncoding(t *testing.T) {
	res := runCase(t, plugintest.Case{ArtifactSink: identitySink{&plugintest.Sink{}}}, map[string]string{"r.txt": "hello"}, nil,
		M{"type": "file", "path": "r.txt", "name": "public/r.txt"})
	require.Empty(t, res.Errors)
	assert.Contains(t, res.Log, `artifact "public/r.txt": 5 bytes, text/plain; charset=utf-8, identity encoding`)
	assert.NotContains(t, res.Log, "gzip encoding")
}

func TestWrongKind(t *testing.T) {
	res := run(t, map[string]string{"dir/f.txt": "x", "file.txt": "y"}, nil,
		M{"type": "file", "path": "dir", "optional": true},
		M{"type": "directory", "path": "file.txt"},
	)
	require.Empty(t, res.Errors)
	assert.Equal(t, task.Failed, res.Resolution.State, "optional only covers missing files")
	assert.Equal(t, []string{
		`required artifact "file.txt" (payload.artifacts[1]): "file.txt" cannot be published as a directory (the wrong kind, or a path the worker refuses)`,
	}, res.Context.Explanations(), "no optional hint: optional covers missing files only")
	for _, name := range []string{"dir", "file.txt"} {
		a, ok := res.Artifact(name)
		require.True(t, ok, name)
		assert.Equal(t, task.ArtifactError, a.Kind)
		assert.Equal(t, task.ErrorInvalidResourceOnWorker, a.Reason)
	}
}

func TestSymlinkAndPathRules(t *testing.T) {
	outside := t.TempDir()
	res := run(t,
		map[string]string{"in/real.txt": "inside", "dir/ok.txt": "ok"},
		map[string]string{
			"escape":         filepath.Join(outside, "secret"),
			"in/link.txt":    "real.txt",
			"dir/escape.txt": "../../../../../../../etc/passwd",
		},
		M{"type": "file", "path": "escape", "name": "public/escape"},
		M{"type": "file", "path": "../outside.txt", "name": "public/dotdot"},
		M{"type": "file", "path": "in/link.txt", "name": "public/link.txt"},
		M{"type": "directory", "path": "dir", "name": "public/dir"},
	)
	require.Empty(t, res.Errors)
	assert.Equal(t, task.Failed, res.Resolution.State)
	for _, name := range []string{"public/escape", "public/dotdot"} {
		a, ok := res.Artifact(name)
		require.True(t, ok, name)
		assert.Equal(t, task.ArtifactError, a.Kind, name)
		assert.Equal(t, task.ErrorInvalidResourceOnWorker, a.Reason, name)
		assert.Contains(t, a.Message, engines.ErrOutsideTaskDir.Error(), name)
	}
	link, ok := res.Artifact("public/link.txt")
	require.True(t, ok)
	assert.Equal(t, "inside", string(link.Content), "a symlink staying inside is followed")
	_, ok = res.Artifact("public/dir/escape.txt")
	assert.False(t, ok, "a symlink leaving the task directory is not published")
	ok2, ok := res.Artifact("public/dir/ok.txt")
	require.True(t, ok)
	assert.Equal(t, "ok", string(ok2.Content))
}

func TestAbsolutePath(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, writeFile(filepath.Join(dir, "abs.txt"), "absolute"))
	res := run(t, nil, nil, M{"type": "file", "path": filepath.Join(dir, "abs.txt"), "name": "public/abs.txt"})
	require.Empty(t, res.Errors)
	a, ok := res.Artifact("public/abs.txt")
	require.True(t, ok)
	assert.Equal(t, "absolute", string(a.Content))
}

func TestNameRules(t *testing.T) {
	for _, tt := range []struct {
		artifact M
		want     string
	}{
		{M{"type": "file", "path": "a", "name": "public/\x01x"}, "printable ASCII"},
		{M{"type": "file", "path": "a", "name": "public/é"}, "printable ASCII"},
		{M{"type": "file", "path": "a", "name": "public/\x7f"}, "printable ASCII"},
		{M{"type": "file", "path": "a", "name": "public/line\nbreak"}, "printable ASCII"},
		{M{"type": "file", "path": "a", "name": "public/../private/x"}, `".." segments`},
		{M{"type": "file", "path": "a", "name": ".."}, `".." segments`},
		{M{"type": "file", "path": "../up.txt"}, `name (defaulting to the path "../up.txt")`},
		{M{"type": "file", "path": "a", "name": "/public/x"}, `must not start with "/"`},
		{M{"type": "file", "path": ""}, "payload.artifacts[0].path: must not be empty"},
		{M{"type": "link", "path": "a"}, "payload.artifacts[0].type"},
		{M{"type": "file", "path": "a", "contentEncoding": "br"}, "payload.artifacts[0].contentEncoding"},
		{M{"type": "file", "path": "a", "unknown": 1}, "unknown field"},
	} {
		res := run(t, nil, nil, tt.artifact)
		reasons := malformed(t, res)
		require.Len(t, reasons, 1, "%v", tt.artifact)
		assert.Contains(t, reasons[0], "payload.artifacts[0]")
		assert.Contains(t, reasons[0], tt.want, "%v", tt.artifact)
	}
	// Every problem is reported at once.
	res := run(t, nil, nil,
		M{"type": "file", "path": "a", "name": "ok/name"},
		M{"type": "file", "path": "b", "name": "bad/../name"},
		M{"type": "file", "path": "c", "name": "ok/name"},
	)
	reasons := malformed(t, res)
	require.Len(t, reasons, 2)
	assert.Contains(t, reasons[0], "payload.artifacts[1].name")
	assert.Contains(t, reasons[1], `payload.artifacts[2]: artifact name "ok/name" is already used by payload.artifacts[0]`)
}

func TestValidateName(t *testing.T) {
	for _, ok := range []string{"public/logs/live.log", "a", "a b/c~d", `dist\regedit.exe`, "x/./y", "..a/b..", "private/x/"} {
		assert.NoError(t, task.ValidateArtifactName(ok), ok)
	}
	for _, bad := range []string{"", "/abs", "a/../b", "../a", "a/..", "tab\tx", "del\x7f", "ü"} {
		assert.Error(t, task.ValidateArtifactName(bad), bad)
	}
}

func TestExpires(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	def := task.Definition{Created: now, Deadline: now.Add(time.Hour), Expires: now.Add(48 * time.Hour)}
	c := plugintest.Case{Definition: def}
	in := now.Add(24 * time.Hour).Format(time.RFC3339)

	res := runCase(t, c, map[string]string{"a": "x"}, nil, M{"type": "file", "path": "a", "expires": in})
	require.Empty(t, res.Errors)
	a, _ := res.Artifact("a")
	assert.True(t, a.Expires.Equal(now.Add(24*time.Hour)))

	for _, tt := range []struct{ expires, want string }{
		{now.Add(30 * time.Minute).Format(time.RFC3339), "before the task's deadline"},
		{now.Add(49 * time.Hour).Format(time.RFC3339Nano), "after the task's expires"},
		{"tomorrow", "not an RFC 3339 date-time"},
	} {
		res := runCase(t, c, nil, nil, M{"type": "file", "path": "a", "expires": tt.expires})
		reasons := malformed(t, res)
		require.Len(t, reasons, 1)
		assert.Contains(t, reasons[0], "payload.artifacts[0].expires")
		assert.Contains(t, reasons[0], tt.want)
	}
	// The bounds themselves are allowed.
	for _, edge := range []time.Time{def.Deadline, def.Expires} {
		res := runCase(t, c, map[string]string{"a": "x"}, nil, M{"type": "file", "path": "a", "expires": edge.Format(time.RFC3339)})
		require.Empty(t, res.Errors)
	}
}

// vanishing wraps a result so that ExtractFolder hands out one file whose
// Open fails the way an engine reports a file deleted after the listing.
type vanishing struct {
	engines.ResultSet
	gone string
}

type goneFile struct{ engines.File }

func (goneFile) Open() (io.ReadCloser, error) {
	return nil, fmt.Errorf("opening: %w", engines.ErrNotFound)
}

func (v vanishing) ExtractFolder(ctx context.Context, path string, fn func(string, engines.File) error) error {
	return v.ResultSet.ExtractFolder(ctx, path, func(rel string, f engines.File) error {
		if rel == v.gone {
			f = goneFile{f}
		}
		return fn(rel, f)
	})
}

func TestVanishingFileDuringWalk(t *testing.T) {
	c := plugintest.Case{WrapResult: func(r engines.ResultSet) engines.ResultSet { return vanishing{r, "b.txt"} }}
	res := runCase(t, c, map[string]string{"d/a.txt": "a", "d/b.txt": "b", "d/c.txt": "c"}, nil,
		M{"type": "directory", "path": "d", "name": "public/d"})
	require.Empty(t, res.Errors)
	assert.Equal(t, task.Failed, res.Resolution.State)
	assert.Equal(t, []string{"public/d/a.txt", "public/d/b.txt", "public/d/c.txt"}, res.ArtifactNames())
	b, _ := res.Artifact("public/d/b.txt")
	assert.Equal(t, task.ArtifactError, b.Kind)
	assert.Equal(t, task.ErrorFileMissingOnWorker, b.Reason)
	c2, _ := res.Artifact("public/d/c.txt")
	assert.Equal(t, "c", string(c2.Content))
	assert.Equal(t, []string{`required artifact "public/d/b.txt" (payload.artifacts[0]): "d/b.txt" was not found; mark it ` + "`optional: true`" + ` in the payload if it may be absent`},
		res.Context.Explanations())
}

func TestUnpublishableNameInDirectory(t *testing.T) {
	res := run(t, map[string]string{"d/ok.txt": "a", "d/naïve.txt": "b"}, nil, M{"type": "directory", "path": "d", "name": "public/d"})
	require.Empty(t, res.Errors)
	assert.Equal(t, task.Failed, res.Resolution.State)
	assert.Equal(t, []string{"public/d/ok.txt"}, res.ArtifactNames())
	assert.Contains(t, res.Log, "printable ASCII")
	ex := res.Context.Explanations()
	require.Len(t, ex, 1, "the run's reason")
	assert.Contains(t, ex[0], `artifact "public/d/naïve.txt" (from payload.artifacts[0] "d"): not published: `)
}

func TestEmptyDirectory(t *testing.T) {
	res := run(t, map[string]string{"d/sub/.keep": ""}, nil, M{"type": "directory", "path": "d/sub"})
	require.Empty(t, res.Errors)
	assert.Equal(t, task.Completed, res.Resolution.State)
	a, _ := res.Artifact("d/sub/.keep")
	assert.Equal(t, int64(0), a.Size)
}

func TestPublishException(t *testing.T) {
	sink := &plugintest.Sink{Fail: func(a task.Artifact) error {
		if a.Name == "public/d/b.txt" {
			return task.ResourceUnavailable(errors.New("queue answered 503"))
		}
		return nil
	}}
	files := map[string]string{"d/a.txt": "a", "d/b.txt": "b", "d/c.txt": "c"}
	res := runCase(t, plugintest.Case{Sink: sink}, files, nil, M{"type": "directory", "path": "d", "name": "public/d"})
	assert.Equal(t, task.Resolution{State: task.Exception, Reason: task.ReasonResourceUnavailable}, res.Resolution)
	assert.ErrorContains(t, res.Err(plugintest.StageStopped), "503")
}

func TestPublishPlainErrorIsInternal(t *testing.T) {
	sink := &plugintest.Sink{Fail: func(task.Artifact) error { return errors.New("disk full") }}
	res := runCase(t, plugintest.Case{Sink: sink}, map[string]string{"a": "x"}, nil, M{"type": "file", "path": "a"})
	assert.Equal(t, task.Resolution{State: task.Exception, Reason: task.ReasonInternalError}, res.Resolution)
	assert.ErrorContains(t, res.Err(plugintest.StageStopped), `publishing artifact "a": disk full`)
}

func TestUploadConcurrencyIsBounded(t *testing.T) {
	var inflight, most atomic.Int32
	sink := &plugintest.Sink{Fail: func(task.Artifact) error {
		n := inflight.Add(1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		time.Sleep(time.Millisecond) // widen the window; correctness does not depend on it
		inflight.Add(-1)
		return nil
	}}
	files := map[string]string{}
	for i := range 40 {
		files[fmt.Sprintf("d/f%02d.txt", i)] = "x"
	}
	res := runCase(t, plugintest.Case{Sink: sink, Plugins: []plugins.Plugin{newPlugin(t, 3)}}, files, nil, M{"type": "directory", "path": "d"})
	require.Empty(t, res.Errors)
	assert.Len(t, res.Artifacts, 40)
	assert.LessOrEqual(t, most.Load(), int32(3))
}

func TestNoArtifacts(t *testing.T) {
	res := plugintest.Run(t, plugintest.Case{Plugins: []plugins.Plugin{newPlugin(t, 0)}, Payload: M{"mock": M{"exitCode": 2}}})
	require.Empty(t, res.Errors)
	assert.Equal(t, task.Failed, res.Resolution.State)
	assert.Empty(t, res.Artifacts)
}

func TestExtractErrorFromEngine(t *testing.T) {
	// An engine failure that is not about the path ends the run as an
	// exception with the engine's reason.
	res := plugintest.Run(t, plugintest.Case{
		Plugins: []plugins.Plugin{newPlugin(t, 0)},
		Payload: M{
			"mock":      M{"error": M{"stage": "extract", "reason": "resource-unavailable", "message": "daemon gone"}},
			"artifacts": []any{M{"type": "file", "path": "a"}},
		},
	})
	assert.Equal(t, task.Resolution{State: task.Exception, Reason: task.ReasonResourceUnavailable}, res.Resolution)
}

func TestConfig(t *testing.T) {
	_, err := artifacts.New(plugins.Options{Config: []byte(`{"x":1}`)})
	assert.Error(t, err)
	_, err = artifacts.New(plugins.Options{Worker: plugins.WorkerConfig{UploadConcurrency: -1}})
	assert.Error(t, err)
}

func TestLogLinesInPayloadAndWalkOrder(t *testing.T) {
	files := map[string]string{"z.txt": "z"}
	for _, n := range []string{"e", "a", "d", "b", "c"} {
		files["d/"+n+".txt"] = n
	}
	res := runCase(t, plugintest.Case{Plugins: []plugins.Plugin{newPlugin(t, 5)}}, files, nil,
		M{"type": "file", "path": "z.txt"},
		M{"type": "file", "path": "missing.txt", "optional": true},
		M{"type": "directory", "path": "d"},
	)
	require.Empty(t, res.Errors)
	var got []string
	for line := range strings.SplitSeq(res.Log, "\n") {
		if i := strings.Index(line, `] artifact "`); i >= 0 {
			got = append(got, strings.SplitN(line[i+len(`] artifact "`):], `"`, 2)[0])
		}
	}
	assert.Equal(t, []string{"z.txt", "missing.txt", "d/a.txt", "d/b.txt", "d/c.txt", "d/d.txt", "d/e.txt"}, got)
}

// TestEncodingFromSample: a type that would be gzipped gets identity when
// the first bytes do not compress, and the log line says which; the
// content reaches the sink unchanged either way (the sample is not eaten).
func TestEncodingFromSample(t *testing.T) {
	random := make([]byte, 200<<10)
	_, _ = rand.NewChaCha8([32]byte{7}).Read(random)
	text := strings.Repeat("compiling src/pkg/file.go ok\n", 8000)
	files := map[string]string{
		"random.bin": string(random),
		"noext-rand": string(random),
		"build.log":  text,
		"small.bin":  string(random[:100]), // too small to judge: type rules
	}
	res := run(t, files, nil,
		M{"type": "file", "path": "random.bin"},
		M{"type": "file", "path": "noext-rand"},
		M{"type": "file", "path": "build.log"},
		M{"type": "file", "path": "small.bin"},
	)
	require.Empty(t, res.Errors)
	want := map[string]string{"random.bin": "identity", "noext-rand": "identity", "build.log": "gzip", "small.bin": "gzip"}
	for name, enc := range want {
		a, ok := res.Artifact(name)
		require.True(t, ok, name)
		assert.Equal(t, enc, a.ContentEncoding, name)
		assert.Equal(t, files[name], string(a.Content), name)
		assert.Contains(t, res.Log, fmt.Sprintf("artifact %q: %d bytes, %s, %s encoding", name, len(files[name]), a.ContentType, enc))
	}
}
