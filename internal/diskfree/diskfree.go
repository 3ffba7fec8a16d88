// Package diskfree tells how much disk space is left, for the garbage
// collectors that keep it above an operator's floor (container images,
// mount caches and downloads).
package diskfree

// Available returns the bytes available to unprivileged users on the file
// system holding dir (statfs f_bavail on Unix, GetDiskFreeSpaceEx's
// FreeBytesAvailableToCaller on Windows). Elsewhere it returns an error
// wrapping errors.ErrUnsupported.
func Available(dir string) (int64, error) { return available(dir) }
