package localqueue

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// procParent reads the parent pid and the command name (comm) of process
// pid from /proc/<pid>/stat ("pid (comm) state ppid ...", proc(5)).
func procParent(pid int) (ppid int, name string, err error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, "", err
	}
	s := string(data)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return 0, "", fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(s[end+1:]) // state ppid ...
	if len(f) < 2 {
		return 0, "", fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	if f[0] == "Z" || f[0] == "X" {
		return 0, "", fmt.Errorf("process %d exited", pid)
	}
	ppid, err = strconv.Atoi(f[1])
	return ppid, s[open+1 : end], err
}
