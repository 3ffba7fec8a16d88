package container

import (
	"fmt"
	"strings"

	"github.com/moby/moby/client"
)

// Daemon kinds, told apart by the components of the daemon's version
// answer: Podman's API service names a "Podman Engine" component, Docker's
// daemon an "Engine".
const (
	DaemonDocker = "Docker"
	DaemonPodman = "Podman"
)

// daemonKind returns DaemonPodman or DaemonDocker for the version answer v.
func daemonKind(v client.ServerVersionResult) string {
	for _, c := range v.Components {
		if strings.HasPrefix(c.Name, "Podman") {
			return DaemonPodman
		}
	}
	return DaemonDocker
}

// checkDaemon refuses, at start, config the daemon cannot serve, naming the
// daemon and what to change:
//
//   - allowPrivileged with a Docker daemon whose capability bounding set
//     lacks some capability the kernel has: Docker (20.10) gives a
//     privileged container every capability the kernel knows, and runc
//     then fails every privileged start ("unable to apply caps"); Podman
//     gives its own bounding set and is not affected. Checked when the
//     daemon is local (a unix socket, whose peer credentials give the
//     daemon's process).
func checkDaemon(cfg Config, kind, version string) error {
	if !cfg.AllowPrivileged || kind != DaemonDocker {
		return nil
	}
	missing, err := daemonMissingCaps(cfg.Socket)
	if err != nil || len(missing) == 0 {
		return nil // not local, or not readable: the daemon reports at start
	}
	return fmt.Errorf("engine config: allowPrivileged: the %s daemon %s at %s cannot start privileged containers on this host: its capability bounding set lacks %s, and %s gives a privileged container every capability the kernel knows (runc fails with \"unable to apply caps\"); set engine.allowPrivileged to false, run dockerd with every capability, or use Podman",
		kind, version, cfg.Socket, strings.Join(missing, ", "), kind)
}

// capNames are the Linux capability names by number (linux/capability.h).
var capNames = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
	"CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
	"CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
	"CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
	"CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
	"CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
	"CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
}

// missingCaps names the capabilities 0..last not in the bounding set bnd.
func missingCaps(bnd uint64, last int) []string {
	var out []string
	for c := 0; c <= last && c < 64; c++ {
		if bnd&(1<<c) != 0 {
			continue
		}
		if c < len(capNames) {
			out = append(out, capNames[c])
		} else {
			out = append(out, fmt.Sprintf("capability %d", c))
		}
	}
	return out
}
