package task

// User is the OS user a run's commands run as when the engine creates one
// per run (the native engine's multiuser mode). The engine stores it in the
// run's Context under UserKey before the Prepare stage, so that plugins can
// hand what they prepare to it (cache ownership) and recognise it (the
// proxy's peer check).
type User struct {
	// Name is the account name, e.g. "task_0a1b2c3d4e5f".
	Name string
	// UID and GID are the POSIX user and primary group IDs (-1 on
	// Windows).
	UID, GID int
	// Groups are the supplementary group IDs (POSIX), from the payload's
	// osGroups.
	Groups []int
	// Home is the user's home directory: the run's task directory.
	Home string
	// CurrentUser is true when the commands run as the worker's user
	// (features.runTaskAsCurrentUser); the task user still exists.
	CurrentUser bool
	// OS is the engine's own state for the user (a logon token on
	// Windows); plugins leave it alone.
	OS any
}

// UserKey is the Context value key of a run's *User.
type UserKey struct{}

// RunUser returns the run's task user, or nil when the engine runs tasks
// as the worker's own user.
func (c *Context) RunUser() *User {
	u, _ := c.Value(UserKey{}).(*User)
	return u
}
