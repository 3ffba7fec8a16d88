package container

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// daemonMissingCaps returns the capabilities the kernel has
// (/proc/sys/kernel/cap_last_cap) that the daemon listening on socket (a
// local unix:// socket; its process from the socket's peer credentials)
// lacks in its bounding set (/proc/<pid>/status CapBnd).
func daemonMissingCaps(socket string) ([]string, error) {
	path, ok := strings.CutPrefix(socket, "unix://")
	if !ok {
		return nil, errors.New("not a unix socket")
	}
	conn, err := net.Dial("unix", path)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	raw, err := conn.(*net.UnixConn).SyscallConn()
	if err != nil {
		return nil, err
	}
	var cred *unix.Ucred
	var serr error
	if err := raw.Control(func(fd uintptr) { cred, serr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) }); err != nil {
		return nil, err
	}
	if serr != nil {
		return nil, serr
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cred.Pid))
	if err != nil {
		return nil, err
	}
	var bnd uint64
	found := false
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "CapBnd:"); ok {
			if bnd, err = strconv.ParseUint(strings.TrimSpace(v), 16, 64); err != nil {
				return nil, err
			}
			found = true
		}
	}
	if !found {
		return nil, errors.New("no CapBnd in the daemon's status")
	}
	lastRaw, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return nil, err
	}
	last, err := strconv.Atoi(strings.TrimSpace(string(lastRaw)))
	if err != nil {
		return nil, err
	}
	return missingCaps(bnd, last), nil
}
