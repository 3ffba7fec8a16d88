//go:build !linux

package localqueue

import "errors"

// procParent is Linux only (/proc); elsewhere serve watches only its own
// parent, and only when asked (Command.StopWithParent).
func procParent(pid int) (ppid int, name string, err error) {
	return 0, "", errors.New("no /proc")
}
