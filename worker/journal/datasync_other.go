//go:build !linux

package journal

import "os"

// datasync flushes f's data to disk: fsync where the system has no
// fdatasync(2) that Go reaches portably (os.File.Sync: F_FULLFSYNC on
// darwin, FlushFileBuffers on Windows).
func datasync(f *os.File) error { return f.Sync() }
