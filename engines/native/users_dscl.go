package native

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"sync"
)

// dsclAccounts manages macOS task users with Directory Service's dscl
// (create, delete, read), dseditgroup (group membership) and pkill/pgrep
// (their processes). Tasks are headless: no desktop session is started for
// the user. run executes a tool and returns its output; tests replace it.
type dsclAccounts struct {
	run func(ctx context.Context, tool string, args ...string) ([]byte, error)
	mu  sync.Mutex // picks and creates one UniqueID at a time
}

// staffGID is macOS's "staff" group, the primary group of ordinary users.
const staffGID = 20

// firstTaskUID is the lowest UniqueID given to a task user.
const firstTaskUID = 1000

func execRun(ctx context.Context, tool string, args ...string) ([]byte, error) {
	var out bytes.Buffer
	c := exec.CommandContext(ctx, tool, args...)
	c.Stdout, c.Stderr = &out, &out
	if err := c.Run(); err != nil {
		return out.Bytes(), fmt.Errorf("%s %s: %w: %s", tool, strings.Join(args, " "), err, bytes.TrimSpace(out.Bytes()))
	}
	return out.Bytes(), nil
}

func (a *dsclAccounts) create(ctx context.Context, name, home string, groups []string) (*TaskUser, error) {
	gids := make([]int, 0, len(groups))
	for _, g := range groups {
		out, err := a.run(ctx, "/usr/bin/dscl", ".", "-read", "/Groups/"+g, "PrimaryGroupID")
		if err != nil {
			return nil, fmt.Errorf("osGroups: group %s: %w", g, err)
		}
		f := strings.Fields(string(out))
		if len(f) < 2 {
			return nil, fmt.Errorf("osGroups: group %s: unexpected dscl output %q", g, out)
		}
		gid, err := strconv.Atoi(f[len(f)-1])
		if err != nil {
			return nil, fmt.Errorf("osGroups: group %s: unexpected dscl output %q", g, out)
		}
		gids = append(gids, gid)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	uid, err := a.freeUID(ctx)
	if err != nil {
		return nil, err
	}
	path := "/Users/" + name
	steps := [][]string{
		{"-create", path},
		{"-create", path, "UniqueID", strconv.Itoa(uid)},
		{"-create", path, "PrimaryGroupID", strconv.Itoa(staffGID)},
		{"-create", path, "NFSHomeDirectory", home},
		{"-create", path, "UserShell", "/bin/bash"},
		{"-create", path, "RealName", "Taskcluster task user " + name},
	}
	for _, s := range steps {
		if _, err := a.run(ctx, "/usr/bin/dscl", append([]string{"."}, s...)...); err != nil {
			_, _ = a.run(ctx, "/usr/bin/dscl", ".", "-delete", path)
			return nil, err
		}
	}
	for _, g := range groups {
		if _, err := a.run(ctx, "/usr/sbin/dseditgroup", "-o", "edit", "-a", name, "-t", "user", g); err != nil {
			_, _ = a.run(ctx, "/usr/bin/dscl", ".", "-delete", path)
			return nil, err
		}
	}
	return &TaskUser{Name: name, UID: uid, GID: staffGID, Groups: gids, Home: home, OS: groups}, nil
}

// freeUID returns one more than the highest UniqueID in use, at least
// firstTaskUID.
func (a *dsclAccounts) freeUID(ctx context.Context) (int, error) {
	out, err := a.run(ctx, "/usr/bin/dscl", ".", "-list", "/Users", "UniqueID")
	if err != nil {
		return 0, err
	}
	next := firstTaskUID
	for line := range strings.SplitSeq(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		if id, err := strconv.Atoi(f[1]); err == nil && id >= next {
			next = id + 1
		}
	}
	return next, nil
}

// killAll kills the user's processes (pkill -KILL -U) until pgrep finds
// none (pgrep exits 1 when nothing matches).
func (a *dsclAccounts) killAll(u *TaskUser) error {
	uid := strconv.Itoa(u.UID)
	for range 100 {
		_, _ = a.run(context.Background(), "/usr/bin/pkill", "-KILL", "-U", uid)
		if _, err := a.run(context.Background(), "/usr/bin/pgrep", "-U", uid); err != nil {
			if ee := (*exec.ExitError)(nil); errors.As(err, &ee) && ee.ExitCode() == 1 || errors.Is(err, errNoMatch) {
				return nil
			}
			return err
		}
	}
	return fmt.Errorf("processes of %s keep appearing", u.Name)
}

// errNoMatch lets a test's run report pgrep's "nothing matched".
var errNoMatch = errors.New("no process matched")

// remove takes the user out of its groups and deletes its record.
func (a *dsclAccounts) remove(ctx context.Context, u *TaskUser) error {
	var errs []error
	groups, _ := u.OS.([]string)
	for _, g := range groups {
		if _, err := a.run(ctx, "/usr/sbin/dseditgroup", "-o", "edit", "-d", u.Name, "-t", "user", g); err != nil {
			errs = append(errs, err)
		}
	}
	if _, err := a.run(ctx, "/usr/bin/dscl", ".", "-delete", "/Users/"+u.Name); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
