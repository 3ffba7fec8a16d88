package native_test

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/engines/enginetest"
	"github.com/workergen/workergen/engines/native"
	"github.com/workergen/workergen/task"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("multiuser mode needs root")
	}
}

// multiuserRun builds a run whose task directory a task user can reach
// (the parents are 0711, as the worker's tasks directory is).
func multiuserRun(t *testing.T, e engines.Engine, payload any, scopes ...string) (*testRun, error) {
	t.Helper()
	base, err := filepath.EvalSymlinks(t.TempDir())
	require.NoError(t, err)
	for d := base; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		require.NoError(t, os.Chmod(d, 0o711))
	}
	dir := filepath.Join(base, "task")
	require.NoError(t, os.Mkdir(dir, 0o755))
	raw, err := json.Marshal(payload)
	require.NoError(t, err)
	lb := enginetest.NewLogBuffer()
	tc := &task.Context{TaskID: "T", TaskDir: dir, Log: task.NewLog(lb),
		Worker:     task.WorkerInfo{WorkerPoolID: "prov/wt"},
		Definition: task.Definition{Payload: raw, Scopes: scopes}}
	b, err := e.NewSandboxBuilder(context.Background(), tc)
	return &testRun{tc: tc, log: lb, b: b}, err
}

func sh(script string) map[string]any {
	return map[string]any{"command": [][]string{{"/bin/sh", "-c", script}}}
}

// Each run is a fresh, unprivileged user that is gone afterwards with all
// its processes; it cannot read a root-only file or signal the worker.
func TestMultiuserFreshUserPerRun(t *testing.T) {
	requireRoot(t)
	secret := filepath.Join(t.TempDir(), "worker.yml")
	require.NoError(t, os.WriteFile(secret, []byte("accessToken: s3cret\n"), 0o600))
	e := newEngine(t, `{"multiuser": true, "enableResourceMonitor": false}`)
	var uids []string
	for range 2 {
		r, err := multiuserRun(t, e, sh(`id -u; id -un; echo "home=$HOME"; cat `+secret+`; echo "cat=$?"; kill -0 `+strconv.Itoa(os.Getpid())+`; echo "kill=$?"; touch mine; setsid sleep 1000 & echo done`))
		require.NoError(t, err)
		u := r.tc.RunUser()
		require.NotNil(t, u)
		rs := r.run(t)
		log := string(r.log.Bytes())
		require.True(t, rs.Success(), log)
		lines := strings.Split(log, "\n")
		uid := strings.TrimSpace(lines[slicesIndex(lines, "running command")+1])
		assert.NotEqual(t, "0", uid)
		assert.Equal(t, strconv.Itoa(u.UID), uid)
		assert.Contains(t, log, u.Name+"\n")
		assert.Contains(t, log, "home="+r.tc.TaskDir)
		assert.Contains(t, log, "Permission denied")
		assert.NotContains(t, log, "s3cret")
		assert.Contains(t, log, "cat=1")
		assert.Contains(t, log, "kill=1")
		fi, err := os.Stat(filepath.Join(r.tc.TaskDir, "mine"))
		require.NoError(t, err)
		assert.Equal(t, uint32(u.UID), fi.Sys().(*syscall.Stat_t).Uid, "owner of a file the task wrote")
		_, err = user.Lookup(u.Name)
		assert.Error(t, err, "user %s still exists after the run", u.Name)
		assert.Empty(t, uidProcs(t, u.UID), "processes of %s left", u.Name)
		uids = append(uids, uid)
	}
	assert.NotEqual(t, uids[0], uids[1])
}

func slicesIndex(lines []string, prefix string) int {
	for i, l := range lines {
		if strings.Contains(l, prefix) {
			return i
		}
	}
	return -1
}

// uidProcs lists live processes whose uids include uid.
func uidProcs(t *testing.T, uid int) []string {
	entries, err := os.ReadDir("/proc")
	require.NoError(t, err)
	var out []string
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "status"))
		if err != nil {
			continue
		}
		for line := range strings.SplitSeq(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "Uid:"); ok && slicesContains(strings.Fields(v), strconv.Itoa(uid)) && !strings.Contains(string(data), "State:\tZ") {
				out = append(out, e.Name())
			}
		}
	}
	return out
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// osGroups: an allowed group the task holds the scope for becomes a
// supplementary group of its processes; a group the operator did not
// allow, or one without the scope, is malformed-payload naming it.
func TestMultiuserOSGroups(t *testing.T) {
	requireRoot(t)
	grp, err := user.LookupGroup("adm")
	if err != nil {
		t.Skip("no adm group")
	}
	e := newEngine(t, `{"multiuser": true, "osGroups": ["adm"], "enableResourceMonitor": false}`)
	p := sh("id -G")
	p["osGroups"] = []string{"adm"}
	r, err := multiuserRun(t, e, p, "generic-worker:os-group:prov/wt/adm")
	require.NoError(t, err)
	rs := r.run(t)
	require.True(t, rs.Success(), string(r.log.Bytes()))
	assert.Contains(t, strings.Fields(string(r.log.Bytes())), grp.Gid, "supplementary group adm (%s) missing: %s", grp.Gid, r.log.Bytes())

	_, err = multiuserRun(t, e, p)
	require.ErrorContains(t, err, "needs scope generic-worker:os-group:prov/wt/adm")
	p["osGroups"] = []string{"root"}
	_, err = multiuserRun(t, e, p, "generic-worker:os-group:prov/wt/*")
	require.ErrorContains(t, err, `payload.osGroups[0]: group "root" is not one this worker allows`)
	var ee *task.ExceptionError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, task.ReasonMalformedPayload, ee.Reason)

	// Outside multiuser mode osGroups may only be empty (insecure_posix).
	_, err = multiuserRun(t, newEngine(t, `{}`), p)
	require.ErrorContains(t, err, "osGroups may only be empty")
}

// runTaskAsCurrentUser: with the scope and the operator's consent the
// commands run as the worker's user (root here); the task user still
// exists during the run and is removed after.
func TestMultiuserRunTaskAsCurrentUser(t *testing.T) {
	requireRoot(t)
	p := sh("id -u")
	p["features"] = map[string]any{"runTaskAsCurrentUser": true}
	scope := "generic-worker:run-task-as-current-user:prov/wt"

	_, err := multiuserRun(t, newEngine(t, `{"multiuser": true}`), p, scope)
	require.ErrorContains(t, err, "enableRunTaskAsCurrentUser is false")

	e := newEngine(t, `{"multiuser": true, "enableRunTaskAsCurrentUser": true, "enableResourceMonitor": false}`)
	_, err = multiuserRun(t, e, p)
	require.ErrorContains(t, err, "needs scope "+scope)

	r, err := multiuserRun(t, e, p, scope)
	require.NoError(t, err)
	u := r.tc.RunUser()
	require.True(t, u.CurrentUser)
	rs := r.run(t)
	require.True(t, rs.Success(), string(r.log.Bytes()))
	lines := strings.Split(string(r.log.Bytes()), "\n")
	assert.Equal(t, "0", strings.TrimSpace(lines[slicesIndex(lines, "running command")+1]))
	_, err = user.Lookup(u.Name)
	assert.Error(t, err)
}

// The resource monitor stops a task while the host is above the
// thresholds for longer than allowed (thresholds every host exceeds:
// 0 % used, all memory as the minimum available), and the run fails; with
// features.resourceMonitor false the same task completes.
func TestResourceMonitorAborts(t *testing.T) {
	cfg := `{"maxMemoryUsagePercent": 0, "minAvailableMemoryBytes": 4611686018427387904, "allowedHighMemoryDurationSecs": 0}`
	e := newEngine(t, cfg)
	r, err := newTestRun(t, e, cmdPayload([]string{"/bin/sh", "-c", "sleep 60"}))
	require.NoError(t, err)
	start := time.Now()
	rs := r.run(t)
	log := string(r.log.Bytes())
	assert.True(t, rs.Killed(), log)
	assert.False(t, rs.Success())
	assert.Less(t, time.Since(start), 50*time.Second)
	assert.Contains(t, log, "resource monitor: memory used")
	assert.Contains(t, log, "aborting the task")
	assert.Contains(t, log, "resource monitor: peak system memory used")

	b, _ := json.Marshal(map[string]any{"command": [][]string{{"/bin/sh", "-c", "sleep 1.5"}}, "features": map[string]any{"resourceMonitor": false}})
	r, err = newTestRun(t, e, string(b))
	require.NoError(t, err)
	rs = r.run(t)
	assert.True(t, rs.Success(), string(r.log.Bytes()))
	assert.NotContains(t, string(r.log.Bytes()), "resource monitor")
}

// BenchmarkRunPerUser is one run of `true` from NewSandboxBuilder to
// Dispose: insecure (the worker's user) against multiuser (a user created
// with useradd before and deleted with userdel after). The difference is
// the per-run cost of the task user. The resource monitor is off in both.
func BenchmarkRunPerUser(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("multiuser mode needs root")
	}
	base := b.TempDir()
	for d := base; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		_ = os.Chmod(d, 0o711)
	}
	payload, _ := json.Marshal(map[string]any{"command": [][]string{{"/bin/true"}}})
	for _, mode := range []string{"insecure", "multiuser"} {
		b.Run(mode, func(b *testing.B) {
			cfg := `{"enableResourceMonitor": false, "cgroups": false, "multiuser": ` + strconv.FormatBool(mode == "multiuser") + `}`
			e, err := native.New(engines.Options{Config: json.RawMessage(cfg)})
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				dir, err := os.MkdirTemp(base, mode)
				if err != nil {
					b.Fatal(err)
				}
				rs := runOnceB(b, e, dir, payload)
				if !rs.Success() {
					b.Fatal("run failed")
				}
			}
		})
	}
}

func runOnceB(b *testing.B, e engines.Engine, dir string, payload json.RawMessage) engines.ResultSet {
	tc := &task.Context{TaskID: "B", TaskDir: dir, Log: task.NewLog(io.Discard), Definition: task.Definition{Payload: payload}}
	ctx := context.Background()
	sb, err := e.NewSandboxBuilder(ctx, tc)
	if err != nil {
		b.Fatal(err)
	}
	s, err := sb.Start(ctx)
	if err != nil {
		b.Fatal(err)
	}
	rs, err := s.Wait(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if err := rs.Dispose(); err != nil {
		b.Fatal(err)
	}
	return rs
}

// A cache directory written by one task user is read and written by the
// next: the engine hands the whole task directory, mounted caches
// included, to the run's user when it starts (as the mounts plugin moves
// a cache in before that).
func TestMultiuserCacheAcrossUsers(t *testing.T) {
	requireRoot(t)
	e := newEngine(t, `{"multiuser": true, "enableResourceMonitor": false}`)
	r1, err := multiuserRun(t, e, sh(`mkdir cache && echo one > cache/f && chmod 600 cache/f`))
	require.NoError(t, err)
	require.True(t, r1.run(t).Success(), string(r1.log.Bytes()))

	r2, err := multiuserRun(t, e, sh(`cat cache/f && echo two >> cache/f && touch cache/g`))
	require.NoError(t, err)
	require.NoError(t, os.Rename(filepath.Join(r1.tc.TaskDir, "cache"), filepath.Join(r2.tc.TaskDir, "cache")))
	rs := r2.run(t)
	require.True(t, rs.Success(), string(r2.log.Bytes()))
	b, err := os.ReadFile(filepath.Join(r2.tc.TaskDir, "cache", "f"))
	require.NoError(t, err)
	assert.Equal(t, "one\ntwo\n", string(b))
}

// Two runs at once (capacity 2): neither can read the other's task
// directory.
func TestMultiuserConcurrentRunsIsolated(t *testing.T) {
	requireRoot(t)
	e := newEngine(t, `{"multiuser": true, "enableResourceMonitor": false}`)
	r1, err := multiuserRun(t, e, sh(`echo private > secret.txt && sleep 2`))
	require.NoError(t, err)
	ctx := context.Background()
	s1, err := r1.b.Start(ctx)
	require.NoError(t, err)
	other := filepath.Join(r1.tc.TaskDir, "secret.txt")
	r2, err := multiuserRun(t, e, sh(`for i in $(seq 100); do [ -e `+other+` ] && break; sleep 0.05; done; ls `+r1.tc.TaskDir+`; echo "ls=$?"; cat `+other+`; echo "cat=$?"`))
	require.NoError(t, err)
	rs2 := r2.run(t)
	rs1, err := s1.Wait(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = rs1.Dispose() })
	log := string(r2.log.Bytes())
	require.True(t, rs2.Success(), log)
	assert.Contains(t, log, "ls=2")
	assert.Contains(t, log, "cat=1")
	assert.NotContains(t, log, "private")
}

// A task directory task users cannot reach is an error naming the
// directory to open up, not a task failing with "Permission denied".
func TestMultiuserUnreachableTaskDir(t *testing.T) {
	requireRoot(t)
	e := newEngine(t, `{"multiuser": true, "enableResourceMonitor": false}`)
	r, err := multiuserRun(t, e, sh("true"))
	require.NoError(t, err)
	parent := filepath.Dir(r.tc.TaskDir)
	require.NoError(t, os.Chmod(parent, 0o700))
	_, err = r.b.Start(context.Background())
	require.ErrorContains(t, err, parent+" (mode 0700) cannot be crossed by task users")
	require.NoError(t, r.b.Discard())
	_, err = user.Lookup(r.tc.RunUser().Name)
	assert.Error(t, err, "user removed on Discard")
}
