package taskclusterproxy

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
)

// peerCheck is true where peerUID works.
const peerCheck = true

// peerUID returns the uid owning the client end of c, a TCP connection
// over IPv4 loopback accepted by this process: the line of /proc/net/tcp
// whose local address is c's remote address and whose remote address is
// c's local address (proc(5): addresses are the raw 32-bit values in hex,
// in host byte order, and ports in hex; the 8th field is the uid).
func peerUID(c net.Conn) (int, error) {
	client, ok1 := c.RemoteAddr().(*net.TCPAddr)
	server, ok2 := c.LocalAddr().(*net.TCPAddr)
	if !ok1 || !ok2 || client.IP.To4() == nil || server.IP.To4() == nil {
		return 0, fmt.Errorf("not an IPv4 TCP connection: %v", c.RemoteAddr())
	}
	hexAddr := func(a *net.TCPAddr) string {
		return fmt.Sprintf("%08X:%04X", binary.NativeEndian.Uint32(a.IP.To4()), a.Port)
	}
	local, remote := hexAddr(client), hexAddr(server)
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 8 || fields[1] != local || fields[2] != remote {
			continue
		}
		return strconv.Atoi(fields[7])
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no socket %s -> %s in /proc/net/tcp", local, remote)
}
