package mounts

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// DefaultMinFreeBytes is the free space the plugin keeps on the task
// directory's file system when the config does not say: 10 GiB, as
// generic-worker's requiredDiskSpaceMegabytes default.
const DefaultMinFreeBytes = 10 << 30

// gcEntry is a cache or a download the collector may delete.
type gcEntry struct {
	what     string // for the log: `cache "name"` or `download <file>`
	path     string
	lastUsed time.Time
	cache    string // cache name, "" for a download
}

// collect deletes the least recently used caches and downloads not held
// by a run, oldest first, until the file system holding the task
// directory has minFreeBytes available or nothing is left to delete. It
// runs before a run's mounts are placed. Each deletion is logged to the
// task log; not reaching the floor is logged too, and the task goes on
// (it may still fit).
func (t *taskPlugin) collect() {
	p := t.p
	floor := p.minFreeBytes()
	if floor == 0 {
		return
	}
	avail, err := p.freeBytes(t.tc.TaskDir)
	if err != nil || avail >= floor {
		return
	}
	p.gcMu.Lock()
	defer p.gcMu.Unlock()
	entries := p.gcCandidates()
	slices.SortFunc(entries, func(a, b gcEntry) int { return a.lastUsed.Compare(b.lastUsed) })
	for _, e := range entries {
		if avail >= floor {
			break
		}
		if e.cache != "" {
			p.mu.Lock()
			held := p.inUse[e.cache]
			if !held {
				p.inUse[e.cache] = true // no run mounts it while it goes
			}
			p.mu.Unlock()
			if held {
				continue
			}
		}
		err := os.RemoveAll(e.path)
		if e.cache != "" {
			p.release(e.cache)
		}
		if err != nil {
			p.logger.Warn("mounts gc: could not delete", "what", e.what, "err", err)
			continue
		}
		before := avail
		if avail, err = p.freeBytes(t.tc.TaskDir); err != nil {
			return
		}
		t.tc.Logf("[mounts] low disk space (%d bytes free, want %d): deleted %s, last used %s", before, floor, e.what, e.lastUsed.UTC().Format(time.RFC3339))
		p.logger.Info("mounts gc: deleted", "what", e.what, "lastUsed", e.lastUsed, "freeBytes", avail, "minFreeBytes", floor)
	}
	if avail < floor {
		t.tc.Logf("[mounts] low disk space: %d bytes free, want %d, and no unused cache or download is left to delete", avail, floor)
		p.logger.Warn("mounts gc: free space still below minFreeBytes", "freeBytes", avail, "minFreeBytes", floor)
	}
}

// gcCandidates lists the kept caches (cachesDir/<id>/data) and downloads
// (downloadsDir/<key hash>) with their last use: a cache's cache.json
// time, a download's modification time (set on every use).
func (p *plugin) gcCandidates() []gcEntry {
	var out []gcEntry
	if dirs, err := os.ReadDir(p.cachesDir); err == nil {
		for _, d := range dirs {
			dir := filepath.Join(p.cachesDir, d.Name())
			if _, err := os.Stat(filepath.Join(dir, "data")); err != nil {
				continue // held by a run, or already gone
			}
			e := gcEntry{path: dir, what: "cache directory " + d.Name()}
			meta := filepath.Join(dir, "cache.json")
			if fi, err := os.Stat(meta); err == nil {
				e.lastUsed = fi.ModTime()
			}
			var m struct {
				CacheName string `json:"cacheName"`
			}
			if b, err := os.ReadFile(meta); err == nil && json.Unmarshal(b, &m) == nil && p.cacheDir(m.CacheName) == dir {
				e.cache, e.what = m.CacheName, fmt.Sprintf("writable directory cache %q", m.CacheName)
			}
			if e.cache == "" {
				continue // not one of ours, or written by a crashed run: leave it to the operator
			}
			out = append(out, e)
		}
	}
	if files, err := os.ReadDir(p.downloadsDir); err == nil {
		for _, f := range files {
			if !f.Type().IsRegular() || strings.HasPrefix(f.Name(), ".") {
				continue // partial downloads (.download-*) belong to running fetches
			}
			fi, err := f.Info()
			if err != nil {
				continue
			}
			out = append(out, gcEntry{path: filepath.Join(p.downloadsDir, f.Name()), what: "download " + f.Name(), lastUsed: fi.ModTime()})
		}
	}
	return out
}

// minFreeBytes is the configured floor: DefaultMinFreeBytes when unset,
// 0 (no collection) when set to 0.
func (p *plugin) minFreeBytes() int64 {
	if p.cfg.MinFreeBytes == nil {
		return DefaultMinFreeBytes
	}
	return *p.cfg.MinFreeBytes
}
