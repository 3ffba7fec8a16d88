// Package mounts is generic-worker's `mounts` feature as a plugin
// (upstream: schemas/generic-worker/insecure_posix.json and
// multiuser_windows.json, property `mounts` and definitions fileMount,
// readOnlyDirectory, writableDirectoryCache and content).
//
// Each entry of `payload.mounts` puts something in the task directory
// before the task starts (Prepare stage), in payload order:
//
//   - fileMount {file, content, format?}: the content, decompressed when
//     format (br, bz2, gz, lz, lz4, mz, sz, xz, zst, zz) is given, is
//     written to file.
//   - readOnlyDirectory {directory, content, format}: the content, an
//     archive (7z, rar, tar, tar.br, tar.bz2, tar.gz, tar.lz, tar.lz4,
//     tar.mz, tar.sz, tar.xz, tar.zst, tar.zz, zip), is extracted into
//     directory. As in generic-worker, nothing makes it read-only.
//   - writableDirectoryCache {cacheName, directory, content?, format?}: a
//     directory kept by the worker across tasks in cachesDir. It is moved
//     (renamed) to directory before the task and back after it (Dispose
//     stage, whatever the outcome), unless the run set
//     task.PurgeCachesKey (onExitStatus.purgeCaches) or the task was
//     aborted (killed by the worker, or cancelled or shut down while it
//     ran), in which case it is deleted. A new cache starts empty, or extracted from content. The
//     task needs scope `generic-worker:cache:<cacheName>`.
//
// Relative paths are below the task directory (one leaving it is
// malformed-payload); an absolute path is used as it is, as generic-worker
// does since v98. What an absolute file or read-only directory mount puts
// on the host stays after the run, as upstream.
//
// Content is `{url, sha256?}` (HTTP GET), `{taskId, artifact, sha256?}`
// (the latest run's artifact, fetched from the Queue with the run's task
// credentials, so non-public artifacts need `queue:get-artifact:<name>`
// in the task's scopes; taskId must be among task.dependencies), `{namespace,
// artifact}` (index.findTask, then the same), `{raw}` or `{base64}`.
// Downloads are kept in downloadsDir, keyed by where they came from (URL,
// or taskId and artifact name), and their SHA-256 is computed again on
// every use: a task requiring another SHA-256 than the kept file has gets a
// fresh download. Network errors and 5xx answers are retried, then the run
// is exception/resource-unavailable; a 4xx answer, a SHA-256 mismatch, or
// content that is not a valid archive of its format (or holds entries
// leaving the directory: absolute names, "..", symlinks pointing out) is
// malformed-payload naming payload.mounts[i]. The task log gets one line per
// mount: what, from where, size and time taken.
//
// # Caches and concurrent runs
//
// A worker running several tasks at once never hands one cache to two
// runs: a run asking for a cache another run holds gets a fresh cache
// (preloaded from content if given) that is discarded after the run, and
// the log says so. Waiting instead could deadlock two runs that take the
// same caches in different orders.
//
// # Config (`plugins.mounts`)
//
//	cachesDir        default "<dir of tasksDir>/caches"; same file system as tasksDir
//	downloadsDir     default "<dir of tasksDir>/downloads"
//	maxDownloadSize  bytes, 0 (default) means no bound
//	minFreeBytes     bytes to keep free, default 10 GiB, 0 turns it off
//
// # Disk space
//
// Before a run's mounts are placed, when the file system of the task
// directory has less than minFreeBytes available, kept caches and
// downloads that no run holds are deleted, least recently used first,
// until it has (see generic-worker's requiredDiskSpaceMegabytes). The task
// log names each one deleted.
//
// Not done: the purge-cache service (purgeCache requests); caches are
// removed by operators, by onExitStatus.purgeCaches and by low disk space.
package mounts

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/internal/diskfree"
	"github.com/workergen/workergen/plugins"
	"github.com/workergen/workergen/task"
)

// Config is the plugin's worker config section (`plugins.mounts`).
type Config struct {
	// CachesDir holds writable directory caches between tasks. Empty
	// means "caches" beside the worker's tasksDir.
	CachesDir string `json:"cachesDir,omitempty"`
	// DownloadsDir holds downloaded content. Empty means "downloads"
	// beside tasksDir.
	DownloadsDir string `json:"downloadsDir,omitempty"`
	// MaxDownloadSize bounds one download in bytes; 0 means no bound.
	MaxDownloadSize int64 `json:"maxDownloadSize,omitempty"`
	// MaxExtractedSize bounds what one mount's archive or compressed file
	// may expand to, in bytes; 0 means only the free disk space bounds it.
	// Content that passes it is refused (malformed-payload) as soon as it
	// does, before the disk fills.
	MaxExtractedSize int64 `json:"maxExtractedSize,omitempty"`
	// MinFreeBytes is the free space, in bytes, to keep on the file system
	// of the task directories: before placing a run's mounts, unused
	// caches and downloads are deleted, least recently used first, until
	// it is available. Absent means DefaultMinFreeBytes; 0 turns the
	// collection off.
	MinFreeBytes *int64 `json:"minFreeBytes,omitempty"`
}

type plugin struct {
	cfg          Config
	cachesDir    string
	downloadsDir string
	logger       *slog.Logger
	httpClient   *http.Client

	retryMaxElapsed time.Duration
	retryInitial    time.Duration
	freeBytes       func(dir string) (int64, error)

	// gcMu is held for writing while the collector deletes, and for
	// reading while a fetch checks and opens a kept download.
	gcMu sync.RWMutex

	mu       sync.Mutex
	inUse    map[string]bool          // cache names held by a run
	keyLocks map[string]chan struct{} // one download per content key at a time
}

var _ plugins.Plugin = (*plugin)(nil)

// New returns the mounts plugin. cachesDir and downloadsDir are created
// when first needed.
func New(opts plugins.Options) (plugins.Plugin, error) {
	var cfg Config
	if err := plugins.DecodeConfig(opts.Config, &cfg); err != nil {
		return nil, fmt.Errorf("plugins.mounts: %w", err)
	}
	if cfg.MaxExtractedSize < 0 {
		return nil, fmt.Errorf("plugins.mounts: maxExtractedSize %d is negative (0 means only free disk space bounds extraction)", cfg.MaxExtractedSize)
	}
	if cfg.MaxDownloadSize < 0 {
		return nil, fmt.Errorf("plugins.mounts: maxDownloadSize %d is negative", cfg.MaxDownloadSize)
	}
	if cfg.MinFreeBytes != nil && *cfg.MinFreeBytes < 0 {
		return nil, fmt.Errorf("plugins.mounts: minFreeBytes %d is negative (0 turns the collection off)", *cfg.MinFreeBytes)
	}
	base := filepath.Dir(filepath.Clean(opts.Worker.TasksDir))
	if opts.Worker.TasksDir == "" {
		base = "."
	}
	p := &plugin{
		cfg:             cfg,
		cachesDir:       cfg.CachesDir,
		downloadsDir:    cfg.DownloadsDir,
		logger:          opts.Logger,
		httpClient:      &http.Client{},
		retryMaxElapsed: 2 * time.Minute,
		retryInitial:    500 * time.Millisecond,
		freeBytes:       diskfree.Available,
		inUse:           map[string]bool{},
		keyLocks:        map[string]chan struct{}{},
	}
	if p.logger == nil {
		p.logger = slog.Default()
	}
	if p.cachesDir == "" {
		p.cachesDir = filepath.Join(base, "caches")
	}
	if p.downloadsDir == "" {
		p.downloadsDir = filepath.Join(base, "downloads")
	}
	for _, d := range []*string{&p.cachesDir, &p.downloadsDir} {
		abs, err := filepath.Abs(*d)
		if err != nil {
			return nil, fmt.Errorf("plugins.mounts: %w", err)
		}
		*d = abs // created on first use: a worker whose tasks mount nothing leaves no trace
	}
	p.removePartialDownloads()
	return p, nil
}

// Close does nothing: caches and downloads stay for the next worker.
func (*plugin) Close() error { return nil }

// NewTaskPlugin decodes and checks `payload.mounts`.
func (p *plugin) NewTaskPlugin(ctx context.Context, tc *task.Context) (plugins.TaskPlugin, error) {
	mounts, err := decodeMounts(ctx, tc)
	if err != nil {
		return nil, err
	}
	return &taskPlugin{p: p, tc: tc, mounts: mounts}, nil
}

type taskPlugin struct {
	plugins.Base
	p      *plugin
	tc     *task.Context
	mounts []Mount
	caches []*heldCache

	// started and stopped record how far the task got; aborted that it
	// was killed or ended while running, so its caches are purged (see
	// Dispose).
	started, stopped, aborted bool
}

// Started notes that the task runs.
func (t *taskPlugin) Started(context.Context, engines.Sandbox) error {
	t.started = true
	return nil
}

// Stopped notes whether the worker killed the task (maxRunTime).
func (t *taskPlugin) Stopped(_ context.Context, r engines.ResultSet) (bool, error) {
	t.stopped = true
	if r.Killed() {
		t.abort()
	}
	return true, nil
}

// Exception notes a run that ended while its task was running (cancel,
// worker shutdown, an engine failure): the task was aborted.
func (t *taskPlugin) Exception(context.Context, task.Resolution) error {
	if t.started && !t.stopped {
		t.abort()
	}
	return nil
}

// abort marks the run's caches for purging and says so in the task log
// (while it is still to be uploaded).
func (t *taskPlugin) abort() {
	if !t.aborted && len(t.caches) > 0 {
		t.tc.Logf("[mounts] purging caches since the task was aborted and may have left them in an inconsistent state")
	}
	t.aborted = true
}

// heldCache is a writable directory cache mounted in this run.
type heldCache struct {
	name   string
	target string // absolute path in the task directory
	owned  bool   // false: a fresh copy because another run holds the cache
}

// Prepare fetches every mount's content and puts it in place.
func (t *taskPlugin) Prepare(ctx context.Context) error {
	if len(t.mounts) == 0 {
		return nil
	}
	root, err := os.OpenRoot(t.tc.TaskDir)
	if err != nil {
		return task.InternalError(fmt.Errorf("opening task directory: %w", err))
	}
	defer root.Close()
	t.collect()
	for i := range t.mounts {
		if err := t.mount(ctx, root, i); err != nil {
			return err
		}
	}
	return nil
}

func (t *taskPlugin) mount(ctx context.Context, root *os.Root, i int) error {
	m := &t.mounts[i]
	field := fmt.Sprintf("payload.mounts[%d]", i)
	base, rel, err := mountPath(t.tc.TaskDir, m.target())
	if err != nil { // checked in NewTaskPlugin
		return task.MalformedPayloadf("%s: %v", field, err)
	}
	target := filepath.Join(base, rel)
	start := time.Now()
	if base != t.tc.TaskDir { // an absolute path (generic-worker v98+)
		if err := os.MkdirAll(base, 0o755); err != nil {
			return task.InternalError(fmt.Errorf("%s: creating %s: %w", field, base, err))
		}
		abs, err := os.OpenRoot(base)
		if err != nil {
			return task.InternalError(fmt.Errorf("%s: opening %s: %w", field, base, err))
		}
		defer abs.Close()
		root = abs
	}

	if m.kind() == kindCache {
		return t.mountCache(ctx, root, base, field, m, rel, target, start)
	}
	f, err := t.p.fetch(ctx, t.tc, m.Content, field)
	if err != nil {
		return err
	}
	defer f.close()
	var n int64
	if m.kind() == kindFile {
		n, err = decompress(f.src, m.Format, root, rel, t.p.extractBudget(t.tc.TaskDir))
	} else {
		if err = checkInside(base, rel); err == nil {
			n, err = extract(ctx, f.src, m.Format, target, t.p.extractBudget(t.tc.TaskDir))
		}
	}
	if err != nil {
		return t.placeError(field, m, err)
	}
	t.tc.Logf("[mounts] %s: %s %s from %s (%s, %d bytes, %d bytes written) in %s", field, m.kind(), m.target(), m.Content, fetchedHow(f), f.size, n, time.Since(start).Round(time.Millisecond))
	return nil
}

func fetchedHow(f *fetched) string {
	if f.cached {
		return "already downloaded, sha256 " + f.sha256
	}
	return "sha256 " + f.sha256
}

// placeError maps an extraction or copy failure: the content's fault is
// malformed-payload, anything else internal-error.
func (t *taskPlugin) placeError(field string, m *Mount, err error) error {
	if errors.Is(err, ErrBadContent) {
		t.tc.Logf("[mounts] %s: cannot mount %s at %s: %v", field, m.Content, m.target(), err)
		return task.MalformedPayloadf("%s: cannot mount %s at %q: %v", field, m.Content, m.target(), err)
	}
	var ee *task.ExceptionError
	if errors.As(err, &ee) {
		return err
	}
	return task.InternalError(fmt.Errorf("%s: mounting %s: %w", field, m.target(), err))
}

// checkInside makes the parent directories of rel inside base (the task
// directory, or an absolute mount's parent) through root semantics and
// checks that none of them is a symlink leading out of it.
func checkInside(base, rel string) error {
	root, err := os.OpenRoot(base)
	if err != nil {
		return err
	}
	defer root.Close()
	if rel == "." {
		return nil
	}
	if err := root.MkdirAll(filepath.Dir(rel), 0o755); err != nil {
		return fmt.Errorf("%w: creating the parent of %q: %v", ErrBadContent, rel, err)
	}
	if fi, err := root.Lstat(rel); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		return fmt.Errorf("%w: %q is a symlink", ErrBadContent, rel)
	}
	return nil
}

// cacheDir returns where cache name is kept between runs: a directory
// named by the SHA-256 of the name (names are free text), holding `data`
// (the cache) and `cache.json` (its name, for operators).
func (p *plugin) cacheDir(name string) string {
	sum := sha256.Sum256([]byte(name))
	return filepath.Join(p.cachesDir, hex.EncodeToString(sum[:16]))
}

func (t *taskPlugin) mountCache(ctx context.Context, root *os.Root, base, field string, m *Mount, rel, target string, start time.Time) error {
	if err := checkInside(base, rel); err != nil {
		return t.placeError(field, m, err)
	}
	if fi, err := root.Lstat(rel); err == nil {
		entries, _ := os.ReadDir(target)
		if !fi.IsDir() || len(entries) > 0 {
			return task.MalformedPayloadf("%s.directory: %q already exists in the task directory", field, m.Directory)
		}
		if err := root.Remove(rel); err != nil {
			return task.InternalError(err)
		}
	}
	p := t.p
	p.mu.Lock()
	owned := !p.inUse[m.CacheName]
	if owned {
		p.inUse[m.CacheName] = true
	}
	p.mu.Unlock()
	held := &heldCache{name: m.CacheName, target: target, owned: owned}
	data := filepath.Join(p.cacheDir(m.CacheName), "data")
	if owned {
		if _, err := os.Stat(data); err == nil {
			if err := os.Rename(data, target); err != nil {
				p.release(m.CacheName)
				return task.InternalError(fmt.Errorf("%s: moving cache %q into the task directory (cachesDir must be on the file system of tasksDir): %w", field, m.CacheName, err))
			}
			t.caches = append(t.caches, held)
			t.tc.Logf("[mounts] %s: writable directory cache %q mounted at %s (existing cache) in %s", field, m.CacheName, m.Directory, time.Since(start).Round(time.Millisecond))
			return nil
		}
	} else {
		t.tc.Logf("[mounts] %s: writable directory cache %q is in use by another task on this worker: this task gets a fresh cache, discarded after the task", field, m.CacheName)
	}
	t.caches = append(t.caches, held)
	if m.Content == nil {
		if err := os.Mkdir(target, 0o755); err != nil {
			return task.InternalError(fmt.Errorf("%s: creating cache directory: %w", field, err))
		}
		t.tc.Logf("[mounts] %s: writable directory cache %q mounted at %s (new, empty) in %s", field, m.CacheName, m.Directory, time.Since(start).Round(time.Millisecond))
		return nil
	}
	f, err := p.fetch(ctx, t.tc, m.Content, field)
	if err != nil {
		return err
	}
	defer f.close()
	n, err := extract(ctx, f.src, m.Format, target, p.extractBudget(t.tc.TaskDir))
	if err != nil {
		return t.placeError(field, m, err)
	}
	t.tc.Logf("[mounts] %s: writable directory cache %q mounted at %s (new, preloaded from %s, %s, %d bytes, %d bytes written) in %s", field, m.CacheName, m.Directory, m.Content, fetchedHow(f), f.size, n, time.Since(start).Round(time.Millisecond))
	return nil
}

func (p *plugin) release(name string) {
	p.mu.Lock()
	delete(p.inUse, name)
	p.mu.Unlock()
}

// Dispose moves the run's caches back to cachesDir, or deletes them when
// the run set task.PurgeCachesKey or the task was aborted: killed by the
// worker (maxRunTime; seen in Stopped) or ended while it ran (cancel,
// worker shutdown, an engine failure; seen in Exception). Like generic-worker (v106, mounts_feature.go
// shouldPurgeCaches: "the task was aborted and may have left them in an
// inconsistent state"), a half-written cache is worse than none. A cache
// the task removed or replaced by a file is dropped.
func (t *taskPlugin) Dispose(context.Context) error {
	purge, _ := t.tc.Value(task.PurgeCachesKey{}).(bool)
	purge = purge || t.aborted
	var errs []error
	for i := len(t.caches) - 1; i >= 0; i-- {
		if err := t.unmount(t.caches[i], purge); err != nil {
			errs = append(errs, err)
		}
	}
	t.caches = nil
	if err := errors.Join(errs...); err != nil {
		return task.InternalError(err)
	}
	return nil
}

func (t *taskPlugin) unmount(c *heldCache, purge bool) error {
	p := t.p
	if !c.owned {
		return nil // the task directory goes with the run
	}
	defer p.release(c.name)
	dir := p.cacheDir(c.name)
	if purge {
		t.tc.Logf("[mounts] purging writable directory cache %q", c.name)
		_ = os.RemoveAll(c.target)
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("purging cache %q: %w", c.name, err)
		}
		return nil
	}
	fi, err := os.Lstat(c.target)
	if err != nil || !fi.IsDir() {
		t.tc.Logf("[mounts] writable directory cache %q is no longer a directory in the task directory: not kept", c.name)
		_ = os.RemoveAll(dir)
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("keeping cache %q: %w", c.name, err)
	}
	meta, _ := json.Marshal(map[string]any{"cacheName": c.name, "lastUsed": time.Now().UTC().Format(time.RFC3339), "lastTaskId": t.tc.TaskID})
	_ = os.WriteFile(filepath.Join(dir, "cache.json"), meta, 0o600)
	data := filepath.Join(dir, "data")
	_ = os.RemoveAll(data)
	if u := t.tc.RunUser(); u != nil && !u.CurrentUser {
		if err := handBack(c.target); err != nil {
			t.tc.Logf("[mounts] could not take writable directory cache %q back from task user %s, dropping it: %v", c.name, u.Name, err)
			_ = os.RemoveAll(dir)
			return nil
		}
	}
	if err := os.Rename(c.target, data); err != nil {
		// As generic-worker: most likely the task holds files open or
		// changed permissions; the cache is dropped, not the worker.
		t.tc.Logf("[mounts] could not keep writable directory cache %q, dropping it: %v", c.name, err)
		p.logger.Warn("dropping cache that could not be moved back", "cacheName", c.name, "err", err)
		_ = os.RemoveAll(dir)
		return nil
	}
	p.logger.Debug("cache kept", "cacheName", c.name, "taskId", t.tc.TaskID)
	return nil
}

// BuildSandbox does nothing: the mounts are files in the task directory,
// which the native engine runs in.
func (t *taskPlugin) BuildSandbox(context.Context, engines.SandboxBuilder) error { return nil }
