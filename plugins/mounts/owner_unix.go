//go:build unix

package mounts

import (
	"io/fs"
	"os"
	"path/filepath"
)

// handBack gives a cache a multiuser run's task user owned back to the
// worker's user (lchown of everything in it) before it is kept, so that
// no file in cachesDir belongs to a deleted user's uid. The next run's
// user receives it when the engine hands it the task directory.
func handBack(dir string) error {
	uid, gid := os.Getuid(), os.Getgid()
	return filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}
