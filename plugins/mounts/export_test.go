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
