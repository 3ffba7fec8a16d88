//go:build linux

package container

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// oomWatcher notices memory-cgroup OOM kills in a container whose cgroup is
// visible on this host, for daemons that do not report them in the
// container state (Podman 4 with runc on cgroup v1 leaves OOMKilled false).
// It must notice the kill while the cgroup exists: the runtime removes the
// cgroup when the container exits. cgroup v1: an eventfd registered on
// memory.oom_control through cgroup.event_control; cgroup v2: inotify on
// memory.events. Each notification reads the oom_kill counter.
type oomWatcher struct {
	fired    atomic.Bool
	stopping atomic.Bool
	stopFD   int // eventfd (v1) or inotify fd (v2)
	wake     int // eventfd used to stop the v2 loop
	file     *os.File
	done     chan struct{}
	once     sync.Once
}

// watchOOM starts watching the memory cgroup of process pid (the
// container's init) if its cgroup path names containerID; it returns nil
// when the cgroup cannot be watched (remote daemon, process gone, no
// memory controller).
func watchOOM(pid int, containerID string) *oomWatcher {
	if pid <= 0 {
		return nil
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return nil
	}
	var v1Path, v2Path string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			v2Path = parts[2]
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c == "memory" {
				v1Path = parts[2]
			}
		}
	}
	switch {
	case v1Path != "" && strings.Contains(v1Path, containerID):
		return watchV1(filepath.Join("/sys/fs/cgroup/memory", v1Path))
	case v2Path != "" && strings.Contains(v2Path, containerID):
		return watchV2(filepath.Join("/sys/fs/cgroup", v2Path))
	}
	return nil
}

func watchV1(dir string) *oomWatcher {
	f, err := os.Open(filepath.Join(dir, "memory.oom_control"))
	if err != nil {
		return nil
	}
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		f.Close()
		return nil
	}
	ctl := fmt.Sprintf("%d %d", efd, f.Fd())
	if err := os.WriteFile(filepath.Join(dir, "cgroup.event_control"), []byte(ctl), 0); err != nil {
		f.Close()
		unix.Close(efd)
		return nil
	}
	w := &oomWatcher{stopFD: efd, wake: -1, file: f, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		buf := make([]byte, 8)
		for {
			// Events come on OOM and when the cgroup is removed (then
			// reading the counter fails) or the watcher is stopped.
			if _, err := unix.Read(efd, buf); err != nil && err != unix.EINTR {
				return
			}
			if w.stopping.Load() {
				return
			}
			n, err := readCounter(f, "oom_kill")
			if err != nil {
				return
			}
			if n > 0 {
				w.fired.Store(true)
			}
		}
	}()
	return w
}

func watchV2(dir string) *oomWatcher {
	f, err := os.Open(filepath.Join(dir, "memory.events"))
	if err != nil {
		return nil
	}
	ifd, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err != nil {
		f.Close()
		return nil
	}
	if _, err := unix.InotifyAddWatch(ifd, filepath.Join(dir, "memory.events"), unix.IN_MODIFY); err != nil {
		f.Close()
		unix.Close(ifd)
		return nil
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		f.Close()
		unix.Close(ifd)
		return nil
	}
	w := &oomWatcher{stopFD: ifd, wake: wake, file: f, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		buf := make([]byte, 4096)
		fds := []unix.PollFd{{Fd: int32(ifd), Events: unix.POLLIN}, {Fd: int32(wake), Events: unix.POLLIN}}
		for {
			if _, err := unix.Poll(fds, -1); err != nil {
				if err == unix.EINTR {
					continue
				}
				return
			}
			if fds[1].Revents != 0 {
				return
			}
			if _, err := unix.Read(ifd, buf); err != nil && err != unix.EINTR {
				return
			}
			n, err := readCounter(f, "oom_kill")
			if err != nil {
				return
			}
			if n > 0 {
				w.fired.Store(true)
			}
		}
	}()
	return w
}

// readCounter reads "name N" from a cgroup key/value file.
func readCounter(f *os.File, name string) (int64, error) {
	buf := make([]byte, 4096)
	n, err := f.ReadAt(buf, 0)
	if n == 0 && err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(buf[:n]), "\n") {
		if k, v, ok := strings.Cut(line, " "); ok && k == name {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, nil
}

// check reads the counter once more (the cgroup may still exist) and
// reports whether an OOM kill was seen.
func (w *oomWatcher) check() bool {
	if w == nil {
		return false
	}
	if n, err := readCounter(w.file, "oom_kill"); err == nil && n > 0 {
		w.fired.Store(true)
	}
	return w.fired.Load()
}

// stop ends the watcher and releases its descriptors.
func (w *oomWatcher) stop() {
	if w == nil {
		return
	}
	w.once.Do(func() {
		w.stopping.Store(true)
		one := make([]byte, 8)
		binary.LittleEndian.PutUint64(one, 1)
		if w.wake >= 0 {
			_, _ = unix.Write(w.wake, one)
		} else {
			_, _ = unix.Write(w.stopFD, one)
		}
		<-w.done
		unix.Close(w.stopFD)
		if w.wake >= 0 {
			unix.Close(w.wake)
		}
		w.file.Close()
	})
}
