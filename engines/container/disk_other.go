//go:build !unix

package container

// freeBytes is unknown off Unix: image garbage collection does nothing.
func freeBytes(string) (int64, bool) { return 0, false }
