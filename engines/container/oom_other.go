//go:build !linux

package container

// oomWatcher is unavailable off Linux: OOM comes from the daemon only.
type oomWatcher struct{}

func watchOOM(int, string) *oomWatcher { return nil }
func (w *oomWatcher) check() bool      { return false }
func (w *oomWatcher) stop()            {}
