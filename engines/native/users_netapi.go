package native

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
)

// winAPI is the part of the Windows API that task users need; the Windows
// build implements it with netapi32, advapi32 and userenv
// (users_windows.go), tests with a fake.
type winAPI interface {
	// netUserAdd creates a local user (NetUserAdd, level 1, USER_PRIV_USER).
	netUserAdd(name, password string) error
	// netUserDel deletes a local user (NetUserDel).
	netUserDel(name string) error
	// addToLocalGroup adds the user to a local group
	// (NetLocalGroupAddMembers, level 3).
	addToLocalGroup(group, name string) error
	// logonUser logs the user on interactively (LogonUserW) and returns
	// the token handle.
	logonUser(name, password string) (token uintptr, err error)
	// loadUserProfile loads (creating it the first time) the user's
	// profile (LoadUserProfileW) and returns its handle and directory.
	loadUserProfile(token uintptr, name string) (profile uintptr, dir string, err error)
	// unloadUserProfile unloads it (UnloadUserProfile).
	unloadUserProfile(token, profile uintptr) error
	// closeHandle closes the token.
	closeHandle(h uintptr) error
	// userSID returns the user's SID in string form (LookupAccountName).
	userSID(name string) (string, error)
	// deleteProfile removes the profile directory and registry entry
	// (DeleteProfileW).
	deleteProfile(sid string) error
	// killUserProcesses ends every process running as the user.
	killUserProcesses(name string) error
}

// winSession is a Windows task user's OS state, kept in TaskUser.OS.
type winSession struct {
	token, profile uintptr
	sid            string
	profileDir     string // the loaded profile's directory (USERPROFILE)
}

// windowsAccounts manages Windows task users: a local account with a
// random password, logged on once to obtain the token that every command
// is created with (CreateProcessAsUser, through SysProcAttr.Token), with
// its profile loaded for the run and deleted afterwards.
type windowsAccounts struct{ api winAPI }

func (a *windowsAccounts) create(_ context.Context, name, home string, groups []string) (*TaskUser, error) {
	password := rand.Text() + "!aA1" // 26 base32 characters plus every class the policy may ask for
	if err := a.api.netUserAdd(name, password); err != nil {
		return nil, fmt.Errorf("NetUserAdd %s: %w", name, err)
	}
	fail := func(err error) (*TaskUser, error) {
		_ = a.api.netUserDel(name)
		return nil, err
	}
	for _, g := range groups {
		if err := a.api.addToLocalGroup(g, name); err != nil {
			return fail(fmt.Errorf("osGroups: adding %s to group %s: %w", name, g, err))
		}
	}
	sid, err := a.api.userSID(name)
	if err != nil {
		return fail(fmt.Errorf("looking up %s: %w", name, err))
	}
	token, err := a.api.logonUser(name, password)
	if err != nil {
		return fail(fmt.Errorf("LogonUser %s: %w", name, err))
	}
	profile, profileDir, err := a.api.loadUserProfile(token, name)
	if err != nil {
		_ = a.api.closeHandle(token)
		return fail(fmt.Errorf("LoadUserProfile %s: %w", name, err))
	}
	return &TaskUser{Name: name, UID: -1, GID: -1, Home: home,
		OS: &winSession{token: token, profile: profile, sid: sid, profileDir: profileDir}}, nil
}

func (a *windowsAccounts) killAll(u *TaskUser) error { return a.api.killUserProcesses(u.Name) }

// remove unloads and deletes the profile, closes the token and deletes the
// account; it tries every step and reports all failures.
func (a *windowsAccounts) remove(_ context.Context, u *TaskUser) error {
	var errs []error
	if s, ok := u.OS.(*winSession); ok {
		if err := a.api.unloadUserProfile(s.token, s.profile); err != nil {
			errs = append(errs, fmt.Errorf("UnloadUserProfile: %w", err))
		}
		if err := a.api.closeHandle(s.token); err != nil {
			errs = append(errs, fmt.Errorf("closing token: %w", err))
		}
		if err := a.api.deleteProfile(s.sid); err != nil {
			errs = append(errs, fmt.Errorf("DeleteProfile: %w", err))
		}
	}
	if err := a.api.netUserDel(u.Name); err != nil {
		errs = append(errs, fmt.Errorf("NetUserDel: %w", err))
	}
	return errors.Join(errs...)
}

// sessionToken returns the logon token of a Windows task user (0 when u
// has none).
func sessionToken(u *TaskUser) uintptr {
	if s, ok := u.OS.(*winSession); ok {
		return s.token
	}
	return 0
}

// profileDir returns the loaded profile directory of a Windows task user
// ("" when unknown).
func profileDir(u *TaskUser) string {
	if s, ok := u.OS.(*winSession); ok {
		return s.profileDir
	}
	return ""
}
