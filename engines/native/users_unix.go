//go:build unix

package native

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
)

// runAsUser makes c run with u's uid, gid and supplementary groups.
func runAsUser(c *exec.Cmd, u *TaskUser) {
	if c.SysProcAttr == nil {
		c.SysProcAttr = &syscall.SysProcAttr{}
	}
	groups := make([]uint32, len(u.Groups))
	for i, g := range u.Groups {
		groups[i] = uint32(g)
	}
	c.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(u.UID), Gid: uint32(u.GID), Groups: groups}
}

// handOver gives dir and everything in it to u (owner and group), and
// makes dir itself private to u (0700). Symbolic links are changed, never
// followed.
func handOver(dir string, u *TaskUser) error {
	if err := checkCrossable(dir); err != nil {
		return err
	}
	return chownTree(dir, u.UID, u.GID, 0o700)
}

// checkCrossable checks that other users may cross every parent of dir
// (search permission for others), else a task user could not reach its
// task directory.
func checkCrossable(dir string) error {
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("%s (mode %04o) cannot be crossed by task users, so they cannot reach their task directories: make it 0711 or 0755 (tasksDir and its parents)", d, fi.Mode().Perm())
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

// chownTree sets the owner of root and everything below it (lchown), and
// root's mode when mode is not 0.
func chownTree(root string, uid, gid int, mode fs.FileMode) error {
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
	if err != nil {
		return err
	}
	if mode != 0 {
		return os.Chmod(root, mode)
	}
	return nil
}

// ChownTree hands root and everything below it to uid:gid (lchown, links
// not followed): for plugins that prepare directories for a multiuser run
// (caches, downloads) and hand them back after.
func ChownTree(root string, uid, gid int) error { return chownTree(root, uid, gid, 0) }
