package native

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeDscl plays dscl, dseditgroup, pkill and pgrep for dsclAccounts.
type fakeDscl struct {
	calls  []string
	procs  int // processes left for pgrep to find
	failOn string
}

func (f *fakeDscl) run(_ context.Context, tool string, args ...string) ([]byte, error) {
	call := tool + " " + strings.Join(args, " ")
	f.calls = append(f.calls, call)
	if f.failOn != "" && strings.Contains(call, f.failOn) {
		return nil, errors.New("fake failure")
	}
	switch {
	case strings.HasSuffix(call, "-list /Users UniqueID"):
		return []byte("root 0\nnobody -2\nalice 501\ntask_old 1004\n"), nil
	case strings.Contains(call, "-read /Groups/docker PrimaryGroupID"):
		return []byte("PrimaryGroupID: 1200\n"), nil
	case strings.HasPrefix(call, "/usr/bin/pkill"):
		f.procs = 0
	case strings.HasPrefix(call, "/usr/bin/pgrep"):
		if f.procs == 0 {
			return nil, errNoMatch
		}
	}
	return nil, nil
}

func TestDsclAccounts(t *testing.T) {
	f := &fakeDscl{procs: 2}
	a := &dsclAccounts{run: f.run}
	u, err := a.create(context.Background(), "task_abc", "/Users/task_abc", []string{"docker"})
	require.NoError(t, err)
	assert.Equal(t, 1005, u.UID, "one above the highest UniqueID")
	assert.Equal(t, staffGID, u.GID)
	assert.Equal(t, []int{1200}, u.Groups)
	assert.Contains(t, f.calls, "/usr/bin/dscl . -create /Users/task_abc UniqueID 1005")
	assert.Contains(t, f.calls, "/usr/bin/dscl . -create /Users/task_abc NFSHomeDirectory /Users/task_abc")
	assert.Contains(t, f.calls, "/usr/sbin/dseditgroup -o edit -a task_abc -t user docker")

	f.calls = nil
	require.NoError(t, a.killAll(u))
	assert.Equal(t, []string{"/usr/bin/pkill -KILL -U 1005", "/usr/bin/pgrep -U 1005"}, f.calls)
	f.calls = nil
	require.NoError(t, a.remove(context.Background(), u))
	assert.Equal(t, []string{"/usr/sbin/dseditgroup -o edit -d task_abc -t user docker", "/usr/bin/dscl . -delete /Users/task_abc"}, f.calls)

	// A failed step deletes the half-made record.
	f = &fakeDscl{failOn: "UserShell"}
	a = &dsclAccounts{run: f.run}
	_, err = a.create(context.Background(), "task_x", "/h", nil)
	require.Error(t, err)
	assert.Equal(t, "/usr/bin/dscl . -delete /Users/task_x", f.calls[len(f.calls)-1])
}

// fakeWin records the Windows API calls of windowsAccounts.
type fakeWin struct {
	calls []string
	fail  string
}

func (f *fakeWin) rec(s string) error {
	f.calls = append(f.calls, s)
	if f.fail != "" && strings.HasPrefix(s, f.fail) {
		return errors.New("fake failure")
	}
	return nil
}
func (f *fakeWin) netUserAdd(name, password string) error {
	if len(password) < 14 {
		return errors.New("password too short")
	}
	return f.rec("NetUserAdd " + name)
}
func (f *fakeWin) netUserDel(name string) error { return f.rec("NetUserDel " + name) }
func (f *fakeWin) addToLocalGroup(group, name string) error {
	return f.rec("NetLocalGroupAddMembers " + group + " " + name)
}
func (f *fakeWin) logonUser(name, _ string) (uintptr, error) {
	return 7, f.rec("LogonUser " + name)
}
func (f *fakeWin) loadUserProfile(token uintptr, name string) (uintptr, string, error) {
	return 9, `C:\Users\` + name, f.rec("LoadUserProfile " + name)
}
func (f *fakeWin) unloadUserProfile(token, profile uintptr) error {
	if token != 7 || profile != 9 {
		return errors.New("wrong handles")
	}
	return f.rec("UnloadUserProfile")
}
func (f *fakeWin) closeHandle(h uintptr) error { return f.rec("CloseHandle") }
func (f *fakeWin) userSID(name string) (string, error) {
	return "S-1-5-21-1", f.rec("LookupSID " + name)
}
func (f *fakeWin) deleteProfile(sid string) error      { return f.rec("DeleteProfile " + sid) }
func (f *fakeWin) killUserProcesses(name string) error { return f.rec("taskkill " + name) }

func TestWindowsAccounts(t *testing.T) {
	f := &fakeWin{}
	a := &windowsAccounts{api: f}
	u, err := a.create(context.Background(), "task_abc", `C:\tasks\t`, []string{"Users"})
	require.NoError(t, err)
	assert.Equal(t, uintptr(7), sessionToken(u))
	assert.Equal(t, `C:\Users\task_abc`, profileDir(u))
	env := userEnv([]string{"USERNAME=SYSTEM", "USERPROFILE=C:\\Windows\\system32\\config\\systemprofile", "PATH=x"}, u, "windows")
	assert.Equal(t, []string{"PATH=x", "USERNAME=task_abc", `USERPROFILE=C:\Users\task_abc`}, env)
	require.NoError(t, a.killAll(u))
	require.NoError(t, a.remove(context.Background(), u))
	assert.Equal(t, []string{
		"NetUserAdd task_abc", "NetLocalGroupAddMembers Users task_abc", "LookupSID task_abc",
		"LogonUser task_abc", "LoadUserProfile task_abc",
		"taskkill task_abc",
		"UnloadUserProfile", "CloseHandle", "DeleteProfile S-1-5-21-1", "NetUserDel task_abc",
	}, f.calls)

	// A failed logon deletes the account it made.
	f = &fakeWin{fail: "LogonUser"}
	a = &windowsAccounts{api: f}
	_, err = a.create(context.Background(), "task_x", `C:\t`, nil)
	require.ErrorContains(t, err, "LogonUser task_x")
	assert.Equal(t, "NetUserDel task_x", f.calls[len(f.calls)-1])

	// remove tries every step and reports each failure.
	f = &fakeWin{fail: "UnloadUserProfile"}
	a = &windowsAccounts{api: f}
	u, err = a.create(context.Background(), "task_y", `C:\t`, nil)
	require.NoError(t, err)
	err = a.remove(context.Background(), u)
	require.ErrorContains(t, err, "UnloadUserProfile")
	assert.Equal(t, "NetUserDel task_y", f.calls[len(f.calls)-1])
}

func TestTaskUserName(t *testing.T) {
	n := newTaskUserName()
	assert.Regexp(t, `^task_[a-z0-9]{12}$`, n)
	assert.LessOrEqual(t, len(n), 20, "SAM account names are at most 20 characters")
	assert.NotEqual(t, n, newTaskUserName())
}
