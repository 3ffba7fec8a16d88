package native

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// linuxAccounts manages task users with the shadow suite's useradd and
// userdel (Debian package passwd, installed on every Debian system), which
// take the locks on /etc/passwd, /etc/group and /etc/shadow that other
// tools honour.
type linuxAccounts struct {
	useradd, userdel string
	used             map[int]bool // IDs given out by this worker
	// mu serialises the worker's own calls: useradd and userdel fail,
	// rather than wait, while another holds the password file lock.
	mu sync.Mutex
}

func newUserAccounts(*slog.Logger) (userAccounts, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("multiuser mode needs the worker to run as root (it creates a user per task)")
	}
	a := &linuxAccounts{used: map[int]bool{}}
	for _, t := range []struct {
		name string
		dst  *string
	}{{"useradd", &a.useradd}, {"userdel", &a.userdel}} {
		p, err := lookTool(t.name)
		if err != nil {
			return nil, fmt.Errorf("%s not found (install Debian's passwd package): %w", t.name, err)
		}
		*t.dst = p
	}
	return a, nil
}

// lookTool finds a system tool in PATH or the sbin directories, which a
// worker's PATH may lack.
func lookTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/sbin"} {
		if p := d + "/" + name; executable(p) == nil {
			return p, nil
		}
	}
	return "", exec.ErrNotFound
}

// create runs `useradd --no-create-home --home-dir HOME --user-group
// --shell /bin/sh NAME` and looks the user and the groups up.
func (a *linuxAccounts) create(ctx context.Context, name, home string, groups []string) (*TaskUser, error) {
	gids := make([]int, 0, len(groups))
	for _, g := range groups {
		grp, err := user.LookupGroup(g)
		if err != nil {
			return nil, fmt.Errorf("osGroups: %w", err)
		}
		gid, _ := strconv.Atoi(grp.Gid)
		gids = append(gids, gid)
	}
	var err error
	for range 10 {
		id := a.pickID()
		n := strconv.Itoa(id)
		err = a.run(ctx, a.useradd, "--no-create-home", "--home-dir", home, "--shell", "/bin/sh",
			"--uid", n, "--user-group", "-K", "GID_MIN="+n, "-K", "GID_MAX="+n, name)
		if ee := (*exec.ExitError)(nil); !errors.As(err, &ee) || (ee.ExitCode() != exitUIDInUse && ee.ExitCode() != exitGroupInUse) {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	u, err := user.Lookup(name)
	if err != nil {
		_ = a.run(ctx, a.userdel, name)
		return nil, fmt.Errorf("looking up new user %s: %w", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &TaskUser{Name: name, UID: uid, GID: gid, Groups: gids, Home: home}, nil
}

// Task users get a random uid (and an equal gid for their own group) in
// [minTaskID, maxTaskID), never one this worker gave before: a later task
// must not own the files an earlier one left outside its task directory
// (in /tmp, say), as it would if IDs were reused lowest-first.
const (
	minTaskID = 100_000
	maxTaskID = 4_000_000
	// useradd exit statuses (useradd(8)).
	exitUIDInUse   = 4
	exitGroupInUse = 9
)

func (a *linuxAccounts) pickID() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	for {
		var b [4]byte
		_, _ = rand.Read(b[:])
		id := minTaskID + int(binary.LittleEndian.Uint32(b[:])%(maxTaskID-minTaskID))
		if _, err := user.LookupId(strconv.Itoa(id)); err != nil && !a.used[id] {
			a.used[id] = true
			return id
		}
	}
}

// remove runs `userdel NAME`, which also removes the user's group. The
// home directory (the task directory) is the worker's to remove.
func (a *linuxAccounts) remove(ctx context.Context, u *TaskUser) error {
	return a.run(ctx, a.userdel, u.Name)
}

// run runs a shadow tool, retrying while another process holds the
// password file lock (exit status 10 for useradd/userdel's "cannot lock").
func (a *linuxAccounts) run(ctx context.Context, tool string, args ...string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	var err error
	for delay := 10 * time.Millisecond; delay < 10*time.Second; delay *= 2 {
		var out bytes.Buffer
		c := exec.CommandContext(ctx, tool, args...)
		c.Stdout, c.Stderr = &out, &out
		err = c.Run()
		if err == nil {
			return nil
		}
		err = fmt.Errorf("%s %s: %w: %s", tool, strings.Join(args, " "), err, bytes.TrimSpace(out.Bytes()))
		if ee := (*exec.ExitError)(nil); !errors.As(err, &ee) || ee.ExitCode() != 10 {
			return err
		}
		time.Sleep(delay)
	}
	return err
}

// killAll sends SIGKILL to every process whose real or effective uid is
// u's, until a scan of /proc finds none (a process may fork while it is
// being killed, so scans repeat).
func (a *linuxAccounts) killAll(u *TaskUser) error {
	for range 1000 {
		pids, err := uidProcesses(u.UID)
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			return nil
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(time.Millisecond)
	}
	return fmt.Errorf("processes of %s keep appearing", u.Name)
}

// uidProcesses lists the processes with uid among their real, effective,
// saved or filesystem uids (/proc/<pid>/status "Uid:" line). Zombies are
// skipped (they are dead; their parent reaps them).
func uidProcesses(uid int) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	want := strconv.Itoa(uid)
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile("/proc/" + e.Name() + "/status")
		if err != nil {
			continue // gone
		}
		var uids []string
		zombie := false
		for line := range strings.SplitSeq(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "Uid:"); ok {
				uids = strings.Fields(v)
			} else if v, ok := strings.CutPrefix(line, "State:"); ok {
				zombie = strings.HasPrefix(strings.TrimSpace(v), "Z")
			}
		}
		for _, id := range uids {
			if id == want && !zombie {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids, nil
}
