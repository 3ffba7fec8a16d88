package native

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/workergen/workergen/task"
)

// Multiuser mode (Config.Multiuser): generic-worker's multiuser engine.
// Every run gets a fresh OS user (task_<random>), created when the engine
// decodes the payload and deleted when the run ends, after every process of
// that user is gone. The task directory is the user's home and belongs to
// it (mode 0700) for the run. The user is unprivileged: it holds no
// supplementary group but those of the payload's osGroups that the operator
// allows (Config.OSGroups) and the task's scopes grant
// (generic-worker:os-group:<workerPoolId>/<group>).
//
// Creating and deleting users is OS-specific and sits behind userAccounts:
// Linux (useradd/userdel, users_linux.go), macOS (dscl, users_darwin.go),
// Windows (NetUserAdd, LogonUser, LoadUserProfile, users_windows.go).

// TaskUser is the run's task user (task.User, stored in the run's
// task.Context under task.UserKey).
type TaskUser = task.User

// userAccounts creates and deletes task users. Implementations must be safe
// for concurrent use.
type userAccounts interface {
	// create makes a user called name with home directory home (which
	// exists) and the given supplementary groups (names), and returns it.
	create(ctx context.Context, name, home string, groups []string) (*TaskUser, error)
	// killAll kills every process of u and returns once none is left.
	killAll(u *TaskUser) error
	// remove deletes u (its account, its group and, on Windows, its
	// profile). It is called once, after killAll.
	remove(ctx context.Context, u *TaskUser) error
}

// multiuserPayload is the part of the payload multiuser mode reads
// (multiuser_posix.json / multiuser_windows.json).
type multiuserPayload struct {
	OSGroups []string `json:"osGroups"`
	Features struct {
		RunTaskAsCurrentUser bool  `json:"runTaskAsCurrentUser"`
		ResourceMonitor      *bool `json:"resourceMonitor"`
	} `json:"features"`
}

func parseMultiuserPayload(payload json.RawMessage) (multiuserPayload, error) {
	var p multiuserPayload
	if len(payload) == 0 {
		return p, nil
	}
	if err := json.Unmarshal(payload, &p); err != nil {
		return p, task.MalformedPayloadf("payload: %v", err)
	}
	return p, nil
}

// checkUserFeatures validates osGroups and features.runTaskAsCurrentUser
// against the mode, the operator's config and the task's scopes. Problems
// are malformed-payload errors naming the field, group or scope.
func (e *Engine) checkUserFeatures(ctx context.Context, tc *task.Context, p multiuserPayload) error {
	var errs []error
	if !e.multiuser {
		if len(p.OSGroups) > 0 {
			errs = append(errs, task.MalformedPayloadf("payload.osGroups: %q: this worker runs tasks as its own user (insecure engine), where osGroups may only be empty; use a multiuser worker", p.OSGroups))
		}
		return errors.Join(errs...)
	}
	for i, g := range p.OSGroups {
		if !slices.Contains(e.osGroups, g) {
			errs = append(errs, task.MalformedPayloadf("payload.osGroups[%d]: group %q is not one this worker allows (engine config osGroups: %q)", i, g, e.osGroups))
			continue
		}
		scope := "generic-worker:os-group:" + tc.Worker.WorkerPoolID + "/" + g
		ok, err := tc.HasScopes(ctx, scope)
		if err != nil {
			return err
		}
		if !ok {
			errs = append(errs, task.MalformedPayloadf("payload.osGroups[%d]: group %q needs scope %s, which the task does not have", i, g, scope))
		}
	}
	if p.Features.RunTaskAsCurrentUser {
		scope := "generic-worker:run-task-as-current-user:" + tc.Worker.WorkerPoolID
		ok, err := tc.HasScopes(ctx, scope)
		switch {
		case !e.allowCurrentUser:
			errs = append(errs, task.MalformedPayloadf("payload.features.runTaskAsCurrentUser: this worker does not allow it (engine config enableRunTaskAsCurrentUser is false)"))
		case err != nil:
			return err
		case !ok:
			errs = append(errs, task.MalformedPayloadf("payload.features.runTaskAsCurrentUser: needs scope %s, which the task does not have", scope))
		}
	}
	return errors.Join(errs...)
}

// newTaskUserName returns "task_" and 12 random lower-case letters and
// digits (a valid name on every OS: at most 20 characters for Windows'
// SAM account names, starting with a letter for useradd's NAME_REGEX).
func newTaskUserName() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	var b [12]byte
	_, _ = rand.Read(b[:])
	var s strings.Builder
	s.WriteString("task_")
	for _, c := range b {
		s.WriteByte(alphabet[int(c)%len(alphabet)])
	}
	return s.String()
}

// runUser is a run's task user and its clean-up, done once whichever of
// Discard and the end of the run comes first.
type runUser struct {
	e    *Engine
	tc   *task.Context
	user *TaskUser
	once sync.Once
	err  error
}

// newRunUser creates the run's user (multiuser mode) and records it in tc.
func (e *Engine) newRunUser(ctx context.Context, tc *task.Context, p multiuserPayload) (*runUser, error) {
	u, err := e.accounts.create(ctx, newTaskUserName(), tc.TaskDir, p.OSGroups)
	if err != nil {
		return nil, fmt.Errorf("creating task user: %w", err)
	}
	u.CurrentUser = p.Features.RunTaskAsCurrentUser
	tc.SetValue(task.UserKey{}, u)
	if u.CurrentUser {
		tc.Logf("task user %s created; the commands run as the worker's user (features.runTaskAsCurrentUser)", u.Name)
	} else {
		tc.Logf("running as task user %s", u.Name)
	}
	return &runUser{e: e, tc: tc, user: u}, nil
}

// end kills every process of the user and deletes it; later calls return
// the first result.
func (r *runUser) end() error {
	if r == nil {
		return nil
	}
	r.once.Do(func() {
		err := r.e.accounts.killAll(r.user)
		if err == nil {
			err = r.e.accounts.remove(context.WithoutCancel(context.Background()), r.user)
		}
		if err != nil {
			r.e.logger.Error("native engine: removing task user", "taskId", r.tc.TaskID, "user", r.user.Name, "error", err)
		}
		r.err = err
	})
	return r.err
}

// userEnv replaces HOME, USER, LOGNAME (USERNAME and USERPROFILE, the
// loaded profile, on Windows) in environ with the task user's, so that
// inherited values name the user the commands run as.
func userEnv(environ []string, u *TaskUser, goos string) []string {
	if u == nil || u.CurrentUser {
		return environ
	}
	set := map[string]string{"HOME": u.Home, "USER": u.Name, "LOGNAME": u.Name}
	if goos == "windows" {
		set = map[string]string{"USERNAME": u.Name}
		if p := profileDir(u); p != "" {
			set["USERPROFILE"] = p
		}
	}
	out := make([]string, 0, len(environ)+len(set))
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if _, ok := set[name]; ok {
			continue
		}
		out = append(out, kv)
	}
	for _, k := range slices.Sorted(maps.Keys(set)) {
		out = append(out, k+"="+set[k])
	}
	return out
}
