package native

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Linux cgroup v2 containment. When the worker may create cgroups below its
// own (unified hierarchy, writable, with cgroup.kill: Linux 5.14+), every
// command of a run starts inside one cgroup of its own (clone3
// CLONE_INTO_CGROUP, so there is no window in which a child could escape),
// and killing the run writes cgroup.kill, which also reaches processes that
// left the process group (setsid daemons such as gpg-agent). Process groups
// stay in use, so everything works without cgroups too.

// cgroupParent finds the directory under which run cgroups are created:
// the worker's own cgroup v2 directory. It returns "" when cgroups cannot be
// used, with the reason.
func cgroupParent() (string, error) {
	mount, err := cgroup2Mount()
	if err != nil {
		return "", err
	}
	own, err := ownCgroup2Path()
	if err != nil {
		return "", err
	}
	parent := filepath.Join(mount, filepath.FromSlash(own))
	// Probe: create a child, check it has cgroup.kill, remove it.
	probe, err := newRunCgroup(parent, "probe")
	if err != nil {
		return "", err
	}
	if err := probe.remove(); err != nil {
		return "", err
	}
	return parent, nil
}

// cgroup2Mount returns the mount point of the cgroup v2 hierarchy.
func cgroup2Mount() (string, error) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "", fmt.Errorf("reading mountinfo: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		// "36 35 0:30 / /sys/fs/cgroup rw,... shared:1 - cgroup2 cgroup2 rw"
		fields := strings.Fields(sc.Text())
		for i, f := range fields {
			if f == "-" && i+1 < len(fields) && fields[i+1] == "cgroup2" && len(fields) > 4 {
				if fields[3] != "/" {
					// A bind mount of a sub-tree: paths from
					// /proc/self/cgroup would not match.
					continue
				}
				return fields[4], nil
			}
		}
	}
	return "", errors.New("no cgroup v2 hierarchy mounted")
}

// ownCgroup2Path returns this process's cgroup v2 path ("0::/path").
func ownCgroup2Path() (string, error) {
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", fmt.Errorf("reading /proc/self/cgroup: %w", err)
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			return p, nil
		}
	}
	return "", errors.New("process is in no cgroup v2 cgroup")
}

// runCgroup is the cgroup of one run.
type runCgroup struct {
	dir string
	fd  *os.File // O_DIRECTORY handle, for SysProcAttr.CgroupFD
}

func newRunCgroup(parent, name string) (*runCgroup, error) {
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	dir := filepath.Join(parent, "workergen-"+ownerTag()+"-"+sanitize(name)+"-"+hex.EncodeToString(rnd[:]))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating cgroup: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "cgroup.kill")); err != nil {
		_ = os.Remove(dir)
		return nil, fmt.Errorf("cgroup without cgroup.kill (Linux < 5.14?): %w", err)
	}
	fd, err := os.Open(dir)
	if err != nil {
		_ = os.Remove(dir)
		return nil, fmt.Errorf("opening cgroup: %w", err)
	}
	return &runCgroup{dir: dir, fd: fd}, nil
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, s)
}

// kill kills every process in the cgroup.
func (c *runCgroup) kill() error {
	if err := os.WriteFile(filepath.Join(c.dir, "cgroup.kill"), []byte("1"), 0); err != nil {
		return fmt.Errorf("killing cgroup %s: %w", c.dir, err)
	}
	return nil
}

// remove deletes the cgroup once it is empty (the kernel refuses with
// EBUSY while a process is still exiting; retried for up to 10 s).
func (c *runCgroup) remove() error {
	if c.fd != nil {
		_ = c.fd.Close()
		c.fd = nil
	}
	var err error
	for delay := time.Millisecond; delay < 10*time.Second; delay *= 2 {
		err = syscall.Rmdir(c.dir)
		if err == nil || errors.Is(err, syscall.ENOENT) {
			return nil
		}
		if !errors.Is(err, syscall.EBUSY) {
			break
		}
		time.Sleep(delay) // the kernel gives no event for "removable"
	}
	return fmt.Errorf("removing cgroup %s: %w", c.dir, err)
}
