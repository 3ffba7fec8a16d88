package mounts_test

import (
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/workergen/workergen/plugins"
	"github.com/workergen/workergen/plugins/mounts"
	"github.com/workergen/workergen/plugins/plugintest"
	"github.com/workergen/workergen/task"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"), goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"))
}

func run(t *testing.T, p plugins.Plugin, payload map[string]any, def ...task.Definition) *plugintest.Result {
	t.Helper()
	c := plugintest.Case{Plugins: []plugins.Plugin{p}, Payload: payload}
	if len(def) > 0 {
		c.Definition = def[0]
	}
	return plugintest.Run(t, c)
}

func readFile(t *testing.T, res *plugintest.Result, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(res.Context.TaskDir, rel))
	require.NoError(t, err, rel)
	return string(b)
}

func TestInlineFileMounts(t *testing.T) {
	p := newPlugin(t)
	gz := compress(t, "gz", []byte("unzipped"))
	res := run(t, p, map[string]any{"mounts": []any{
		map[string]any{"file": "a/raw.txt", "content": map[string]any{"raw": "hello"}},
		map[string]any{"file": "b64.bin", "content": map[string]any{"base64": base64.StdEncoding.EncodeToString([]byte{0, 1, 2})}},
		map[string]any{"file": "gz.txt", "format": "gz", "content": map[string]any{"base64": base64.StdEncoding.EncodeToString(gz)}},
	}})
	require.Empty(t, res.Errors)
	require.Equal(t, task.Completed, res.Resolution.State, res.Log)
	assert.Equal(t, "hello", readFile(t, res, "a/raw.txt"))
	assert.Equal(t, "\x00\x01\x02", readFile(t, res, "b64.bin"))
	assert.Equal(t, "unzipped", readFile(t, res, "gz.txt"))
	assert.Contains(t, res.Log, "payload.mounts[2]: file mount gz.txt from base64 content")
}

func TestEveryFileFormat(t *testing.T) {
	files := map[string][]byte{}
	var ms []any
	for f := range compressors {
		files["/"+f] = compress(t, f, []byte("content "+f))
		ms = append(ms, map[string]any{"file": "out/" + f, "format": f, "content": map[string]any{"url": "", "sha256": sum(files["/"+f])}})
	}
	srv := newServer(t, files)
	for _, m := range ms {
		m := m.(map[string]any)
		m["content"].(map[string]any)["url"] = srv.URL + "/" + filepath.Base(m["file"].(string))
	}
	res := run(t, newPlugin(t), map[string]any{"mounts": ms})
	require.Equal(t, task.Completed, res.Resolution.State, res.Log)
	for f := range compressors {
		assert.Equal(t, "content "+f, readFile(t, res, "out/"+f), f)
	}
}

func TestEveryArchiveFormat(t *testing.T) {
	entries := []entry{
		{name: "top/", dir: true},
		{name: "top/f.txt", body: "file"},
		{name: "top/sub/g.txt", body: "nested"},
		{name: "top/link", link: "f.txt"},
		{name: "top/hard", link: "top/f.txt", hardlink: true},
	}
	tarball := makeTar(t, entries)
	files := map[string][]byte{"/tar": tarball, "/zip": makeZip(t, []entry{{name: "top/f.txt", body: "file"}, {name: "top/sub/g.txt", body: "nested"}})}
	formats := []string{"tar", "zip"}
	for c := range compressors {
		files["/tar."+c] = compress(t, c, tarball)
		formats = append(formats, "tar."+c)
	}
	srv := newServer(t, files)
	var ms []any
	for _, f := range formats {
		ms = append(ms, map[string]any{"directory": "d/" + f, "format": f, "content": map[string]any{"url": srv.URL + "/" + f}})
	}
	res := run(t, newPlugin(t), map[string]any{"mounts": ms})
	require.Equal(t, task.Completed, res.Resolution.State, res.Log)
	for _, f := range formats {
		assert.Equal(t, "file", readFile(t, res, "d/"+f+"/top/f.txt"), f)
		assert.Equal(t, "nested", readFile(t, res, "d/"+f+"/top/sub/g.txt"), f)
		if f != "zip" {
			assert.Equal(t, "file", readFile(t, res, "d/"+f+"/top/link"), f)
			target, err := os.Readlink(filepath.Join(res.Context.TaskDir, "d", f, "top/link"))
			require.NoError(t, err)
			assert.Equal(t, "f.txt", target)
			assert.Equal(t, "file", readFile(t, res, "d/"+f+"/top/hard"), f)
		}
	}
}

func TestInvalidArchivesAreMalformedPayload(t *testing.T) {
	formats := []string{"tar", "zip", "rar", "7z"}
	for c := range compressors {
		formats = append(formats, "tar."+c)
	}
	for _, f := range formats {
		t.Run(f, func(t *testing.T) {
			res := run(t, newPlugin(t), map[string]any{"mounts": []any{
				map[string]any{"directory": "x", "format": f, "content": map[string]any{"raw": "this is not an archive"}},
			}})
			require.Equal(t, task.Resolution{State: task.Exception, Reason: task.ReasonMalformedPayload}, res.Resolution, res.Log)
			assert.Contains(t, res.Exception.Error(), "payload.mounts[0]")
		})
	}
}

func TestEscapingEntriesAreRefused(t *testing.T) {
	cases := map[string][]entry{
		"dotdot":           {{name: "../evil", body: "x"}},
		"absolute":         {{name: "/abs-evil", body: "x"}},
		"symlink absolute": {{name: "l", link: "/etc"}},
		"symlink out":      {{name: "a/l", link: "../../evil"}},
		"through symlink":  {{name: "l", link: "."}, {name: "m", link: "l/../.."}},
		"hardlink out":     {{name: "h", link: "../../etc/passwd", hardlink: true}},
	}
	for name, entries := range cases {
		t.Run(name, func(t *testing.T) {
			res := run(t, newPlugin(t), map[string]any{"mounts": []any{
				map[string]any{"directory": "x/y", "format": "tar", "content": map[string]any{"base64": base64.StdEncoding.EncodeToString(makeTar(t, entries))}},
			}})
			require.Equal(t, task.Resolution{State: task.Exception, Reason: task.ReasonMalformedPayload}, res.Resolution, res.Log)
			assert.Contains(t, res.Exception.Error(), "payload.mounts[0]")
			_, err := os.Lstat(filepath.Join(res.Context.TaskDir, "x", "evil"))
			assert.True(t, os.IsNotExist(err))
			_, err = os.Lstat(filepath.Join(res.Context.TaskDir, "evil"))
			assert.True(t, os.IsNotExist(err))
		})
	}
}

func TestMountPathsMustStayInTaskDir(t *testing.T) {
	res := run(t, newPlugin(t), map[string]any{"mounts": []any{
		map[string]any{"file": "../outside", "content": map[string]any{"raw": "x"}},
		map[string]any{"directory": "a/../../b", "format": "zip", "content": map[string]any{"raw": "x"}},
	}})
	require.Equal(t, task.Resolution{State: task.Exception, Reason: task.ReasonMalformedPayload}, res.Resolution)
	ee := reasonOf(t, res.Err(plugintest.StageNewTaskPlugin))
	require.Len(t, ee.Reasons, 2)
	assert.Contains(t, ee.Reasons[0], "payload.mounts[0].file")
	assert.Contains(t, ee.Reasons[1], "payload.mounts[1].directory")
}

func TestURLDownloadIsKeptForTheNextTask(t *testing.T) {
	data := []byte("payload bytes")
	srv := newServer(t, map[string][]byte{"/f": data})
	p := newPlugin(t)
	payload := map[string]any{"mounts": []any{map[string]any{"file": "f", "content": map[string]any{"url": srv.URL + "/f", "sha256": sum(data)}}}}
	for range 2 {
		res := run(t, p, payload)
		require.Equal(t, task.Completed, res.Resolution.State, res.Log)
		assert.Equal(t, string(data), readFile(t, res, "f"))
	}
	assert.EqualValues(t, 1, srv.hits["/f"].Load(), "the second task uses the first one's download")
	res := run(t, p, map[string]any{"mounts": []any{map[string]any{"file": "f", "content": map[string]any{"url": srv.URL + "/f"}}}})
	require.Equal(t, task.Completed, res.Resolution.State, res.Log)
	assert.Contains(t, res.Log, "already downloaded")
	assert.EqualValues(t, 1, srv.hits["/f"].Load())
}

func TestSHA256Mismatch(t *testing.T) {
	srv := newServer(t, map[string][]byte{"/f": []byte("actual")})
	p := newPlugin(t)
	res := run(t, p, map[string]any{"mounts": []any{map[string]any{"file": "f", "content": map[string]any{"url": srv.URL + "/f", "sha256": strings.Repeat("0", 64)}}}})
	require.Equal(t, task.Resolution{State: task.Exception, Reason: task.ReasonMalformedPayload}, res.Resolution)
	assert.Contains(t, res.Exception.Error(), "payload.mounts[0].content.sha256")
	_, err := os.Stat(filepath.Join(res.Context.TaskDir, "f"))
	assert.True(t, os.IsNotExist(err))
	// A later task with the right sum downloads again and succeeds.
	res = run(t, p, map[string]any{"mounts": []any{map[string]any{"file": "f", "content": map[string]any{"url": srv.URL + "/f", "sha256": sum([]byte("actual"))}}}})
	require.Equal(t, task.Completed, res.Resolution.State, res.Log)
}

func TestNotFoundIsMalformedPayload(t *testing.T) {
	srv := newServer(t, map[string][]byte{})
	res := run(t, newPlugin(t), map[string]any{"mounts": []any{map[string]any{"file": "f", "content": map[string]any{"url": srv.URL + "/missing"}}}})
	require.Equal(t, task.Resolution{State: task.Exception, Reason: task.ReasonMalformedPayload}, res.Resolution)
	assert.Contains(t, res.Exception.Error(), "payload.mounts[0].content")
	assert.Contains(t, res.Exception.Error(), "404")
}

func TestUnreachableURLIsResourceUnavailable(t *testing.T) {
	srv := newServer(t, nil)
	url := srv.URL + "/f"
	srv.Close() // nothing listens there any more
	res := run(t, newPlugin(t), map[string]any{"mounts": []any{
		map[string]any{"file": "ok", "content": map[string]any{"raw": "x"}},
		map[string]any{"directory": "d", "format": "tar.gz", "content": map[string]any{"url": url}},
	}})
	require.Equal(t, task.Resolution{State: task.Exception, Reason: task.ReasonResourceUnavailable}, res.Resolution, res.Log)
	assert.Contains(t, res.Log, "payload.mounts[1].content: url "+url+" is unavailable")
}

func TestMissingCacheScope(t *testing.T) {
	res := run(t, newPlugin(t), map[string]any{"mounts": []any{map[string]any{"cacheName": "c1", "directory": "c"}}},
		task.Definition{Scopes: []string{"generic-worker:cache:other"}})
	require.Equal(t, task.Resolution{State: task.Exception, Reason: task.ReasonMalformedPayload}, res.Resolution)
	assert.Contains(t, res.Exception.Error(), `payload.mounts[0].cacheName: the task needs scope "generic-worker:cache:c1"`)
	res = run(t, newPlugin(t), map[string]any{"mounts": []any{map[string]any{"cacheName": "c1", "directory": "c"}}},
		task.Definition{Scopes: []string{"generic-worker:cache:c*"}})
	require.Equal(t, task.Completed, res.Resolution.State, res.Log)
}

func TestArtifactContentNeedsDependency(t *testing.T) {
	res := run(t, newPlugin(t), map[string]any{"mounts": []any{map[string]any{"file": "f", "content": map[string]any{"taskId": "cv8MDnOmTduXKOFQtGbZtw", "artifact": "public/x"}}}})
	require.Equal(t, task.Resolution{State: task.Exception, Reason: task.ReasonMalformedPayload}, res.Resolution)
	assert.Contains(t, res.Exception.Error(), "payload.mounts[0].content.taskId: task.dependencies needs to include cv8MDnOmTduXKOFQtGbZtw")
}

func TestServerErrorsAreRetried(t *testing.T) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) < 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("third time"))
	}))
	defer srv.Close()
	res := run(t, newPlugin(t), map[string]any{"mounts": []any{map[string]any{"file": "f", "content": map[string]any{"url": srv.URL}}}})
	require.Equal(t, task.Completed, res.Resolution.State, res.Log)
	assert.Equal(t, "third time", readFile(t, res, "f"))
	assert.EqualValues(t, 3, calls.Load())
}

func TestMaxDownloadSize(t *testing.T) {
	srv := newServer(t, map[string][]byte{"/big": []byte(strings.Repeat("x", 100))})
	p, err := mounts.New(plugins.Options{Config: []byte(`{"maxDownloadSize": 10, "cachesDir": "` + t.TempDir() + `", "downloadsDir": "` + t.TempDir() + `"}`)})
	require.NoError(t, err)
	res := run(t, p, map[string]any{"mounts": []any{map[string]any{"file": "f", "content": map[string]any{"url": srv.URL + "/big"}}}})
	require.Equal(t, task.Resolution{State: task.Exception, Reason: task.ReasonMalformedPayload}, res.Resolution, res.Log)
	assert.Contains(t, res.Exception.Error(), "maxDownloadSize of 10 bytes")
}

func TestConfigRejectsUnknownKeys(t *testing.T) {
	_, err := mounts.New(plugins.Options{Config: []byte(`{"cacheDir": "x"}`)})
	require.Error(t, err)
}

// TestConcurrentRunsDownloadOnce: two runs needing the same URL at once
// share one download.
func TestConcurrentRunsDownloadOnce(t *testing.T) {
	var hits atomic.Int64
	first := make(chan struct{})
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) == 1 {
			close(first)
		}
		<-release
		_, _ = w.Write([]byte("shared"))
	}))
	defer srv.Close()
	p := newPlugin(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	dirs := []string{t.TempDir(), t.TempDir()}
	for i := range 2 {
		tc := &task.Context{TaskDir: dirs[i], Log: task.NewLog(io.Discard),
			Definition: task.Definition{Payload: []byte(`{"mounts": [{"file": "f", "content": {"url": "` + srv.URL + `/x"}}]}`)}}
		tp, err := p.NewTaskPlugin(ctx, tc)
		require.NoError(t, err)
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = tp.Prepare(ctx)
			_ = tp.Dispose(ctx)
		}()
	}
	<-first
	close(release)
	wg.Wait()
	for i := range 2 {
		require.NoError(t, errs[i])
		got, err := os.ReadFile(filepath.Join(dirs[i], "f"))
		require.NoError(t, err)
		assert.Equal(t, "shared", string(got))
	}
	assert.EqualValues(t, 1, hits.Load())
}
