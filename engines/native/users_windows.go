package native

import (
	"context"
	"fmt"
	"log/slog"
	"os/exec"
	"syscall"
	"unsafe"

	"golang.org/x/sys/windows"
)

var (
	modnetapi32                 = windows.NewLazySystemDLL("netapi32.dll")
	procNetUserAdd              = modnetapi32.NewProc("NetUserAdd")
	procNetUserDel              = modnetapi32.NewProc("NetUserDel")
	procNetLocalGroupAddMembers = modnetapi32.NewProc("NetLocalGroupAddMembers")
	modadvapi32                 = windows.NewLazySystemDLL("advapi32.dll")
	procLogonUserW              = modadvapi32.NewProc("LogonUserW")
	moduserenv                  = windows.NewLazySystemDLL("userenv.dll")
	procLoadUserProfileW        = moduserenv.NewProc("LoadUserProfileW")
	procUnloadUserProfile       = moduserenv.NewProc("UnloadUserProfile")
	procDeleteProfileW          = moduserenv.NewProc("DeleteProfileW")
)

// Constants of lmaccess.h, winbase.h and userenv.h.
const (
	userPrivUser            = 1
	ufScript                = 0x0001
	ufDontExpirePasswd      = 0x10000
	logon32LogonInteractive = 2
	logon32ProviderDefault  = 0
	piNoUI                  = 1
)

// userInfo1 is USER_INFO_1.
type userInfo1 struct {
	name, password    *uint16
	passwordAge, priv uint32
	homeDir, comment  *uint16
	flags             uint32
	scriptPath        *uint16
}

// profileInfo is PROFILEINFOW.
type profileInfo struct {
	size                               uint32
	flags                              uint32
	userName, profilePath, defaultPath *uint16
	serverName, policyPath             *uint16
	profile                            windows.Handle
}

func newUserAccounts(*slog.Logger) (userAccounts, error) {
	return &windowsAccounts{api: sysAPI{}}, nil
}

// sysAPI is winAPI on the real system.
type sysAPI struct{}

// netStatus turns a NET_API_STATUS into an error.
func netStatus(r uintptr) error {
	if r == 0 {
		return nil
	}
	return syscall.Errno(r)
}

func (sysAPI) netUserAdd(name, password string) error {
	info := userInfo1{name: windows.StringToUTF16Ptr(name), password: windows.StringToUTF16Ptr(password),
		priv: userPrivUser, flags: ufScript | ufDontExpirePasswd}
	var parmErr uint32
	r, _, _ := procNetUserAdd.Call(0, 1, uintptr(unsafe.Pointer(&info)), uintptr(unsafe.Pointer(&parmErr)))
	return netStatus(r)
}

func (sysAPI) netUserDel(name string) error {
	r, _, _ := procNetUserDel.Call(0, uintptr(unsafe.Pointer(windows.StringToUTF16Ptr(name))))
	return netStatus(r)
}

func (sysAPI) addToLocalGroup(group, name string) error {
	member := windows.StringToUTF16Ptr(name) // LOCALGROUP_MEMBERS_INFO_3
	r, _, _ := procNetLocalGroupAddMembers.Call(0, uintptr(unsafe.Pointer(windows.StringToUTF16Ptr(group))), 3,
		uintptr(unsafe.Pointer(&member)), 1)
	return netStatus(r)
}

func (sysAPI) logonUser(name, password string) (uintptr, error) {
	var token windows.Token
	r, _, err := procLogonUserW.Call(uintptr(unsafe.Pointer(windows.StringToUTF16Ptr(name))),
		uintptr(unsafe.Pointer(windows.StringToUTF16Ptr("."))),
		uintptr(unsafe.Pointer(windows.StringToUTF16Ptr(password))),
		logon32LogonInteractive, logon32ProviderDefault, uintptr(unsafe.Pointer(&token)))
	if r == 0 {
		return 0, err
	}
	return uintptr(token), nil
}

func (sysAPI) loadUserProfile(token uintptr, name string) (uintptr, string, error) {
	pi := profileInfo{flags: piNoUI, userName: windows.StringToUTF16Ptr(name)}
	pi.size = uint32(unsafe.Sizeof(pi))
	r, _, err := procLoadUserProfileW.Call(token, uintptr(unsafe.Pointer(&pi)))
	if r == 0 {
		return 0, "", err
	}
	buf := make([]uint16, windows.MAX_PATH)
	n := uint32(len(buf))
	if err := windows.GetUserProfileDirectory(windows.Token(token), &buf[0], &n); err != nil {
		return uintptr(pi.profile), "", nil
	}
	return uintptr(pi.profile), windows.UTF16ToString(buf), nil
}

func (sysAPI) unloadUserProfile(token, profile uintptr) error {
	if r, _, err := procUnloadUserProfile.Call(token, profile); r == 0 {
		return err
	}
	return nil
}

func (sysAPI) closeHandle(h uintptr) error { return windows.CloseHandle(windows.Handle(h)) }

func (sysAPI) userSID(name string) (string, error) {
	sid, _, _, err := windows.LookupSID("", name)
	if err != nil {
		return "", err
	}
	return sid.String(), nil
}

func (sysAPI) deleteProfile(sid string) error {
	if r, _, err := procDeleteProfileW.Call(uintptr(unsafe.Pointer(windows.StringToUTF16Ptr(sid))), 0, 0); r == 0 {
		return err
	}
	return nil
}

// killUserProcesses ends the user's processes with taskkill's user filter
// (the job objects already ended those the commands started).
func (sysAPI) killUserProcesses(name string) error {
	out, err := exec.CommandContext(context.Background(), "taskkill.exe", "/F", "/T", "/FI", "USERNAME eq "+name).CombinedOutput()
	if err != nil {
		return fmt.Errorf("taskkill: %w: %s", err, out)
	}
	return nil
}

// runAsUser makes c be created with the user's logon token
// (CreateProcessAsUser); startProc still puts it in a job object.
func runAsUser(c *exec.Cmd, u *TaskUser) {
	if c.SysProcAttr == nil {
		c.SysProcAttr = &syscall.SysProcAttr{}
	}
	c.SysProcAttr.Token = syscall.Token(sessionToken(u))
}

// handOver grants u full control of dir, inherited by everything in it
// (icacls /grant with object and container inheritance).
func handOver(dir string, u *TaskUser) error {
	out, err := exec.Command("icacls.exe", dir, "/grant", u.Name+":(OI)(CI)F", "/T", "/Q").CombinedOutput()
	if err != nil {
		return fmt.Errorf("icacls: %w: %s", err, out)
	}
	return nil
}
