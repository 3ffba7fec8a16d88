package worker

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// inodeState is what makes a directory or file look fresh or not.
type inodeState struct {
	uid, gid uint32
	mode     uint32 // st_mode: type and permission bits
	size     int64
	nlink    uint64
	flags    int64  // FS_IOC_GETFLAGS (chattr flags); -1 when unknown
	xattrs   string // extended attributes (ACLs included): names and values, sorted
}

// freshState is what the worker's first fresh run directory, task
// directory and log looked like right after they were made.
type freshState struct {
	run, task, log inodeState
}

// statFD reads the state of the open file fd.
func statFD(fd int) (inodeState, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return inodeState{}, fmt.Errorf("fstat: %w", err)
	}
	s := inodeState{uid: st.Uid, gid: st.Gid, mode: st.Mode, size: st.Size, nlink: uint64(st.Nlink), flags: -1}
	if v, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS); err == nil {
		s.flags = int64(v)
	}
	x, err := xattrsFD(fd)
	if err != nil {
		return inodeState{}, err
	}
	s.xattrs = x
	return s, nil
}

// xattrsFD lists the extended attributes of fd as name NUL value NUL,
// sorted by name; "" when there are none or the file system has none.
func xattrsFD(fd int) (string, error) {
	n, err := unix.Flistxattr(fd, nil)
	switch {
	case errors.Is(err, unix.ENOTSUP) || n == 0 && err == nil:
		return "", nil
	case err != nil:
		return "", fmt.Errorf("listing extended attributes: %w", err)
	}
	buf := make([]byte, n+256)
	if n, err = unix.Flistxattr(fd, buf); err != nil {
		return "", fmt.Errorf("listing extended attributes: %w", err)
	}
	names := strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00")
	slices.Sort(names)
	var b []byte
	for _, name := range names {
		v := make([]byte, 64<<10)
		m, err := unix.Fgetxattr(fd, name, v)
		if err != nil {
			return "", fmt.Errorf("reading extended attribute %s: %w", name, err)
		}
		b = append(append(append(append(b, name...), 0), v[:m]...), 0)
	}
	return string(b), nil
}

// unlike names what of s differs from fresh, "" when nothing does: owner,
// group, mode, flags and extended attributes must be equal, the size no
// larger (a directory that once held many entries stays large on ext4),
// and a file's link count equal.
func (s inodeState) unlike(fresh inodeState) string {
	var d []string
	for _, c := range []struct {
		differs bool
		what    string
	}{
		{s.uid != fresh.uid || s.gid != fresh.gid, "owner"},
		{s.mode != fresh.mode, "mode"},
		{s.size > fresh.size, "size"},
		{s.mode&unix.S_IFMT == unix.S_IFREG && s.nlink != fresh.nlink, "link count"},
		{s.flags != fresh.flags, "inode flags"},
		{s.xattrs != fresh.xattrs, "extended attributes"},
	} {
		if c.differs {
			d = append(d, c.what)
		}
	}
	if d == nil {
		return ""
	}
	return strings.Join(d, ", ") + " unlike a fresh one's"
}

// captureFresh records what the fresh runDir, its task/ and the log lf
// look like (once per worker; nil when they cannot be read, which turns
// reuse off).
func captureFresh(runDir string, lf *os.File, log *slog.Logger) *freshState {
	var f freshState
	err := func() error {
		for _, c := range []struct {
			path string
			into *inodeState
		}{{runDir, &f.run}, {filepath.Join(runDir, taskDirName), &f.task}} {
			fd, err := unix.Open(c.path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				return err
			}
			*c.into, err = statFD(fd)
			_ = unix.Close(fd)
			if err != nil {
				return err
			}
		}
		var err error
		f.log, err = statFD(int(lf.Fd()))
		return err
	}()
	if err != nil {
		log.Warn("run directories will not be reused", "error", err)
		return nil
	}
	return &f
}

// recycle empties runDir into a spare (see the comment at the top of
// rundir.go). On an error runDir may be partly emptied; the caller
// removes it.
func (p *sparePool) recycle(runDir string) (*spare, error) {
	fresh := p.fresh.Load()
	if fresh == nil {
		return nil, errors.New("no fresh run directory seen yet")
	}
	rd, err := openDirAt(unix.AT_FDCWD, runDir, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", runDir, err)
	}
	defer unix.Close(rd)
	var st unix.Stat_t
	if err := unix.Fstat(rd, &st); err != nil {
		return nil, err
	}
	dev := st.Dev
	// Files of the worker's next to the log (artifact spills, the chain
	// of trust's certified log) go.
	names, err := readNames(rd)
	if err != nil {
		return nil, err
	}
	runFix := &dirFix{fd: -1} // never chmod the run directory here
	for _, n := range names {
		if n != taskDirName && n != logFileName {
			if err := removeAt(rd, n, dev, runFix); err != nil {
				return nil, err
			}
		}
	}
	sp := &spare{}
	var why []string
	if err := p.recycleTaskDir(rd, dev, fresh); err != nil {
		why = append(why, "task directory: "+err.Error())
		if err := removeAt(rd, taskDirName, dev, runFix); err != nil {
			return nil, err
		}
	} else {
		sp.task = true
	}
	if sp.log, err = recycleLog(rd, fresh); err != nil {
		why = append(why, "log: "+err.Error())
		if err := removeAt(rd, logFileName, dev, runFix); err != nil {
			return nil, err
		}
	}
	if err := resetLike(rd, fresh.run); err != nil {
		sp.closeLog()
		return nil, fmt.Errorf("run directory: %w", err)
	}
	sp.path = p.nextPath()
	if err := os.Rename(runDir, sp.path); err != nil {
		sp.closeLog()
		return nil, err
	}
	if len(why) > 0 {
		p.log.Debug("parts of the run directory are made afresh for the next run", "why", strings.Join(why, "; "))
	}
	return sp, nil
}

// recycleTaskDir empties the task directory in the run directory rd and
// checks that it is like a fresh one.
func (p *sparePool) recycleTaskDir(rd int, dev uint64, fresh *freshState) error {
	if !p.reuseTask {
		return errors.New("the engine does not guarantee that no process of a run outlives it")
	}
	td, err := openDirAt(rd, taskDirName, &dirFix{fd: rd, done: true})
	if err != nil {
		return err
	}
	defer unix.Close(td)
	var st unix.Stat_t
	if err := unix.Fstat(td, &st); err != nil {
		return err
	}
	if st.Uid != fresh.task.uid {
		// Handed to a task user (multiuser engine).
		return fmt.Errorf("owner %d, fresh %d", st.Uid, fresh.task.uid)
	}
	if err := emptyDir(td, dev, &dirFix{fd: td}); err != nil {
		return err
	}
	return resetLike(td, fresh.task)
}

// resetLike gives the open directory fd the permission bits of fresh and
// checks that it is then like fresh.
func resetLike(fd int, fresh inodeState) error {
	s, err := statFD(fd)
	if err != nil {
		return err
	}
	if s.mode != fresh.mode && s.mode&unix.S_IFMT == fresh.mode&unix.S_IFMT {
		if err := unix.Fchmod(fd, fresh.mode&0o7777); err != nil {
			return err
		}
		if s, err = statFD(fd); err != nil {
			return err
		}
	}
	if d := s.unlike(fresh); d != "" {
		return errors.New(d)
	}
	return nil
}

// recycleLog empties the log in the run directory rd when no one else has
// it open, and returns it under a write lease; nil when there is no log.
func recycleLog(rd int, fresh *freshState) (*os.File, error) {
	fd, err := openLeased(rd)
	if errors.Is(err, unix.ENOENT) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	s, err := statFD(fd)
	if err == nil {
		s.size = 0
		if d := s.unlike(fresh.log); d != "" {
			err = errors.New(d)
		}
	}
	if err == nil {
		err = unix.Ftruncate(fd, 0)
	}
	// Closed and opened again: ext4 writes a file out at its next close
	// after a truncation to 0 (auto_da_alloc), which is free now that it
	// is empty but would write the next run's log to disk.
	_ = unix.Close(fd)
	if err != nil {
		return nil, err
	}
	// Whoever opened it in between has seen it empty and makes the lease
	// fail while they hold it.
	if fd, err = openLeased(rd); err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err = unix.Fstat(fd, &st); err == nil && st.Size != 0 {
		err = errors.New("written to while it was emptied")
	}
	if err == nil {
		err = unix.SetNonblock(fd, false)
	}
	if err != nil {
		_ = unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), logFileName), nil
}

// openLeased opens the log in rd read-write and takes a write lease on it,
// which the kernel grants only when no other open file description of the
// file exists, and breaks at the next open.
func openLeased(rd int) (int, error) {
	// O_NONBLOCK: a lease someone else holds fails the open instead of
	// waiting for it.
	fd, err := unix.Openat(rd, logFileName, unix.O_RDWR|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return -1, err
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETLEASE, unix.F_WRLCK); err != nil {
		_ = unix.Close(fd)
		return -1, fmt.Errorf("still open elsewhere (a live log reader, a process of the task): %w", err)
	}
	return fd, nil
}

// take renames the spare to runDir, makes what it lacks and returns the
// log, empty and open for writing.
func (p *sparePool) take(sp *spare, runDir string) (*os.File, error) {
	if err := os.Rename(sp.path, runDir); err != nil {
		p.discard(sp)
		return nil, err
	}
	if !sp.task {
		if err := os.Mkdir(filepath.Join(runDir, taskDirName), 0o755); err != nil {
			sp.closeLog()
			return nil, fmt.Errorf("creating task directory: %w", err)
		}
	}
	logPath := filepath.Join(runDir, logFileName)
	if lf := sp.log; lf != nil {
		sp.log = nil
		lease, err := unix.FcntlInt(lf.Fd(), unix.F_GETLEASE, 0)
		if err == nil && lease == unix.F_WRLCK {
			if _, err := unix.FcntlInt(lf.Fd(), unix.F_SETLEASE, unix.F_UNLCK); err == nil {
				return lf, nil
			}
		}
		// Someone opened it while it waited: they keep that inode, the
		// run gets a new one.
		_ = lf.Close()
		if err := os.Remove(logPath); err != nil {
			return nil, err
		}
	}
	lf, err := os.OpenFile(logPath, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("creating task log: %w", err)
	}
	return lf, nil
}

// removeTree removes path and everything below it, like os.RemoveAll,
// and also what a task made hard to remove (read-only or unlistable
// directories it owns: they are made accessible first). It does not
// follow symbolic links and does not cross into other file systems.
func removeTree(path string) error {
	err := os.RemoveAll(path)
	if err == nil {
		return nil
	}
	parent, name := filepath.Split(filepath.Clean(path))
	pd, perr := openDirAt(unix.AT_FDCWD, parent, nil)
	if perr != nil {
		return err
	}
	defer unix.Close(pd)
	var st unix.Stat_t
	if perr := unix.Fstat(pd, &st); perr != nil {
		return err
	}
	if err := removeAt(pd, name, st.Dev, &dirFix{fd: pd, done: true}); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// dirFix makes an open directory writable and searchable by the worker,
// once, when removing in it was refused.
type dirFix struct {
	fd   int
	done bool
}

// grant chmods the directory 0700; it reports whether it did so now.
func (f *dirFix) grant() bool {
	if f.done || f.fd < 0 {
		return false
	}
	f.done = true
	return unix.Fchmod(f.fd, 0o700) == nil
}

// openDirAt opens the directory name in dir without following a symbolic
// link; when that is refused it asks fix (the directory dir, may be nil)
// to grant access and then chmods name itself 0700.
func openDirAt(dir int, name string, fix *dirFix) (int, error) {
	const flags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
	fd, err := unix.Openat(dir, name, flags, 0)
	if errors.Is(err, unix.EACCES) && fix != nil && fix.grant() {
		fd, err = unix.Openat(dir, name, flags, 0)
	}
	if errors.Is(err, unix.EACCES) && dir != unix.AT_FDCWD {
		if unix.Fchmodat(dir, name, 0o700, 0) == nil {
			fd, err = unix.Openat(dir, name, flags, 0)
		}
	}
	return fd, err
}

// readNames lists the directory fd from its start ("." and ".." left out).
func readNames(fd int) ([]string, error) {
	if _, err := unix.Seek(fd, 0, io.SeekStart); err != nil {
		return nil, err
	}
	buf := make([]byte, 8<<10)
	var names []string
	for {
		n, err := unix.Getdents(fd, buf)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("listing directory: %w", err)
		}
		if n <= 0 {
			return names, nil
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
}

// emptyDir removes everything in the directory fd (on device dev), whose
// fix grants access to it when removing in it is refused. It lists the
// directory in batches (a task may leave millions of entries) and passes
// over it again until a pass finds nothing.
func emptyDir(fd int, dev uint64, fix *dirFix) error {
	buf := make([]byte, 8<<10)
	for pass := 0; pass < 3; pass++ {
		if _, err := unix.Seek(fd, 0, io.SeekStart); err != nil {
			return err
		}
		removed := 0
		for {
			n, err := unix.Getdents(fd, buf)
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil {
				return fmt.Errorf("listing directory: %w", err)
			}
			if n <= 0 {
				break
			}
			_, _, names := unix.ParseDirent(buf[:n], -1, nil)
			for _, name := range names {
				if err := removeAt(fd, name, dev, fix); err != nil {
					return err
				}
				removed++
			}
		}
		if removed == 0 {
			return nil
		}
	}
	return errors.New("entries keep appearing in the directory")
}

// removeAt removes name in the directory dir, and everything below it.
func removeAt(dir int, name string, dev uint64, fix *dirFix) error {
	for {
		err := unix.Unlinkat(dir, name, 0)
		switch {
		case err == nil, errors.Is(err, unix.ENOENT):
			return nil
		case errors.Is(err, unix.EISDIR):
			return removeDirAt(dir, name, dev, fix)
		case (errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM)) && fix.grant():
			continue
		default:
			return fmt.Errorf("removing %s: %w", name, err)
		}
	}
}

// removeDirAt removes the directory name in dir and everything in it.
func removeDirAt(dir int, name string, dev uint64, fix *dirFix) error {
	fd, err := openDirAt(dir, name, fix)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("opening %s: %w", name, err)
	}
	var st unix.Stat_t
	if err = unix.Fstat(fd, &st); err == nil && st.Dev != dev {
		err = errors.New("a mount point")
	}
	if err == nil {
		err = emptyDir(fd, dev, &dirFix{fd: fd})
	}
	_ = unix.Close(fd)
	if err != nil {
		return fmt.Errorf("in %s: %w", name, err)
	}
	for {
		err := unix.Unlinkat(dir, name, unix.AT_REMOVEDIR)
		switch {
		case err == nil, errors.Is(err, unix.ENOENT):
			return nil
		case (errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM)) && fix.grant():
			continue
		default:
			return fmt.Errorf("removing %s: %w", name, err)
		}
	}
}
