package mounts

import (
	"time"

	"github.com/workergen/workergen/plugins"
)

// SetRetry shortens the download retries of p for tests.
func SetRetry(p plugins.Plugin, maxElapsed, initial time.Duration) {
	p.(*plugin).retryMaxElapsed = maxElapsed
	p.(*plugin).retryInitial = initial
}

// CacheDataDir returns where cache name is kept between runs.
func CacheDataDir(p plugins.Plugin, name string) string {
	return p.(*plugin).cacheDir(name) + "/data"
}

// SetFreeBytes replaces how p measures free disk space.
func SetFreeBytes(p plugins.Plugin, f func(dir string) (int64, error)) {
	p.(*plugin).freeBytes = f
}
