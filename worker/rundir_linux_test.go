package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/task"
)

// runSeen is what a run's sandbox saw of its directories when it started.
type runSeen struct {
	// identities (inode number and birth time: ext4 hands a deleted
	// inode's number to the next new inode) of the run directory, task
	// directory and log
	runIno, taskIno, logIno string
	taskMode                os.FileMode
	taskUID                 uint32
	taskEntries             []string
	taskXattrs              string
	log                     string // the log's content at the start
	tc                      *task.Context
}

// identity returns path's inode number and birth time: ext4 hands a
// deleted inode's number to the next new inode, the birth time tells them
// apart. "" when the file system keeps no birth times.
func identity(path string) (string, error) {
	var stx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, path, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_INO|unix.STATX_BTIME, &stx); err != nil {
		return "", err
	}
	if stx.Mask&unix.STATX_BTIME == 0 {
		return "", nil
	}
	return fmt.Sprintf("%d@%d.%09d", stx.Ino, stx.Btime.Sec, stx.Btime.Nsec), nil
}

// inodeOf returns path's identity and file info (assert, so that it may
// run in the worker's goroutines).
func inodeOf(t *testing.T, path string) (string, os.FileInfo) {
	id, err := identity(path)
	assert.NoError(t, err)
	fi, err := os.Lstat(path)
	if !assert.NoError(t, err) {
		return id, nil
	}
	return id, fi
}

// seeRun records what a starting run finds.
func seeRun(t *testing.T, tc *task.Context) runSeen {
	s := runSeen{tc: tc}
	s.runIno, _ = inodeOf(t, filepath.Dir(tc.TaskDir))
	var fi os.FileInfo
	s.taskIno, fi = inodeOf(t, tc.TaskDir)
	if fi != nil {
		s.taskMode = fi.Mode()
		s.taskUID = fi.Sys().(*syscall.Stat_t).Uid
	}
	s.logIno, _ = inodeOf(t, tc.LogPath)
	entries, err := os.ReadDir(tc.TaskDir)
	assert.NoError(t, err)
	for _, e := range entries {
		s.taskEntries = append(s.taskEntries, e.Name())
	}
	n, _ := unix.Llistxattr(tc.TaskDir, make([]byte, 4096))
	s.taskXattrs = fmt.Sprint(n)
	data, err := os.ReadFile(tc.LogPath)
	assert.NoError(t, err)
	s.log = string(data)
	return s
}

// reuseEnv runs tasks one after the other through Work, each created only
// once the previous run's directory became a spare.
type reuseEnv struct {
	t    *testing.T
	env  *queueEnv
	w    *Worker
	eng  *fakeEngine
	mu   sync.Mutex
	seen []runSeen
	// mess, when set, runs in the sandbox's start after seeRun: what the
	// task does to its directories.
	mess func(i int, tc *task.Context)
}

func newReuseEnv(t *testing.T, tasks int) *reuseEnv {
	if id, err := identity(t.TempDir()); err != nil || id == "" {
		t.Skipf("no birth times here to tell a new inode from a reused one (%v)", err)
	}
	env := newQueueEnv(t, time.Minute)
	w, eng := env.worker(1, tasks)
	r := &reuseEnv{t: t, env: env, w: w, eng: eng}
	eng.onStart = func(tc *task.Context) {
		s := seeRun(t, tc)
		r.mu.Lock()
		i := len(r.seen)
		r.seen = append(r.seen, s)
		mess := r.mess
		r.mu.Unlock()
		if mess != nil {
			mess(i, tc)
		}
	}
	return r
}

// spares lists the spare directories in tasksDir.
func (r *reuseEnv) spares() []string {
	entries, err := os.ReadDir(r.w.Config.TasksDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	require.NoError(r.t, err)
	var out []string
	for _, e := range entries {
		if isSpareName(e.Name()) {
			out = append(out, e.Name())
		}
	}
	return out
}

// run runs Work for the given payloads, one task after the other; between
// (may be nil) is called after run i's directory became a spare, before
// the next task exists. It returns the task ids.
func (r *reuseEnv) run(payloads []string, between func(i int)) []string {
	r.t.Helper()
	done := make(chan error, 1)
	go func() { done <- r.w.Work(context.Background()) }()
	var ids []string
	for i, p := range payloads {
		id := r.env.createTask(p, 0)
		ids = append(ids, id)
		waitFor(r.t, "run "+fmt.Sprint(i)+" resolved", nil, func() bool {
			st, err := r.env.server.Status(id)
			return err == nil && len(st.Runs) > 0 && st.Runs[0].State != "running" && st.Runs[0].State != "pending"
		})
		if i < len(payloads)-1 {
			waitFor(r.t, "a spare run directory", nil, func() bool { return len(r.spares()) > 0 })
			if between != nil {
				between(i)
			}
		}
	}
	select {
	case err := <-done:
		require.NoError(r.t, err)
	case <-time.After(2 * time.Minute):
		r.t.Fatal("Work did not return")
	}
	for _, id := range ids {
		assert.Equal(r.t, "completed", runState(r.env.status(id), 0), "task %s", id)
	}
	assert.Empty(r.t, r.spares(), "no spare outlives Work")
	entries, err := os.ReadDir(r.w.Config.TasksDir)
	require.NoError(r.t, err)
	for _, e := range entries {
		assert.Equal(r.t, journalDirName, e.Name(), "only the journal is left in tasksDir")
	}
	return ids
}

func (r *reuseEnv) runs() []runSeen {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]runSeen(nil), r.seen...)
}

// TestRunDirReusedAcrossRuns: the second run gets the first run's run
// directory, task directory and log (the same inodes), empty, with the
// fresh mode, and none of the first run's log.
func TestRunDirReusedAcrossRuns(t *testing.T) {
	r := newReuseEnv(t, 3)
	r.run([]string{`{"output": "first run's output\n"}`, `{"output": "second\n"}`, `{"output": "third\n"}`}, nil)
	runs := r.runs()
	require.Len(t, runs, 3)
	for i, s := range runs[1:] {
		assert.Equal(t, runs[0].runIno, s.runIno, "run %d reuses the run directory", i+1)
		assert.Equal(t, runs[0].taskIno, s.taskIno, "run %d reuses the task directory", i+1)
		assert.Equal(t, runs[0].logIno, s.logIno, "run %d reuses the log file", i+1)
		assert.Empty(t, s.taskEntries)
		assert.Equal(t, runs[0].taskMode, s.taskMode)
		assert.NotContains(t, s.log, "first run's output")
	}
}

// TestRunDirReuseCleansWhatTheTaskLeft: a task that leaves files,
// directories with odd modes (unreadable, unwritable, unsearchable, a
// read-only subtree), symbolic links to things outside, a hard link to a
// file outside, a FIFO, and chmods its task directory leaves the next run
// an empty task directory with the fresh mode; nothing outside is touched.
func TestRunDirReuseCleansWhatTheTaskLeft(t *testing.T) {
	outside := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(outside, "keep.txt"), []byte("keep"), 0o644))
	require.NoError(t, os.Mkdir(filepath.Join(outside, "keepdir"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(outside, "keepdir", "f"), []byte("keep"), 0o644))
	r := newReuseEnv(t, 2)
	r.mess = func(i int, tc *task.Context) {
		if i > 0 {
			return
		}
		d := tc.TaskDir
		must := func(err error) { assert.NoError(t, err) }
		must(os.MkdirAll(filepath.Join(d, "ro/a/b"), 0o755))
		must(os.WriteFile(filepath.Join(d, "ro/a/b/f"), []byte("x"), 0o644))
		must(os.MkdirAll(filepath.Join(d, "locked/inner"), 0o755))
		must(os.WriteFile(filepath.Join(d, "locked/inner/f"), []byte("x"), 0o644))
		must(os.Symlink(filepath.Join(outside, "keep.txt"), filepath.Join(d, "link-file")))
		must(os.Symlink(filepath.Join(outside, "keepdir"), filepath.Join(d, "link-dir")))
		must(os.Link(filepath.Join(outside, "keep.txt"), filepath.Join(d, "hardlink")))
		must(unix.Mkfifo(filepath.Join(d, "fifo"), 0o600))
		must(os.WriteFile(filepath.Join(d, "setuid"), []byte("x"), 0o4755))
		must(os.WriteFile(filepath.Join(d, "no-perms"), []byte("x"), 0))
		for _, p := range []string{"ro/a/b/f", "ro/a/b", "ro/a", "ro"} { // chmod -R a-w
			fi, err := os.Lstat(filepath.Join(d, p))
			must(err)
			must(os.Chmod(filepath.Join(d, p), fi.Mode().Perm()&^0o222))
		}
		must(os.Chmod(filepath.Join(d, "locked/inner"), 0o300)) // cannot be listed
		must(os.Chmod(filepath.Join(d, "locked"), 0))           // cannot be entered
		must(os.Chmod(d, 0o500))
	}
	r.run([]string{`{"output": "messy\n"}`, `{"output": "clean\n"}`}, nil)
	runs := r.runs()
	require.Len(t, runs, 2)
	assert.Equal(t, runs[0].taskIno, runs[1].taskIno, "the task directory is reused")
	assert.Empty(t, runs[1].taskEntries, "and empty")
	assert.Equal(t, runs[0].taskMode, runs[1].taskMode, "with the fresh mode")
	data, err := os.ReadFile(filepath.Join(outside, "keep.txt"))
	require.NoError(t, err)
	assert.Equal(t, "keep", string(data))
	assert.FileExists(t, filepath.Join(outside, "keepdir", "f"), "links are not followed")
}

// cgrouplessEngine is an engine that says its runs' processes may outlive
// them (the native engine without cgroups).
type cgrouplessEngine struct{ *fakeEngine }

func (cgrouplessEngine) UsesCgroups() bool { return false }

var _ engines.Engine = cgrouplessEngine{}

// TestRunDirNotReusedWhenUnlikeFresh: a task directory that cannot be
// made like a fresh one (another owner, as the multiuser engine leaves it;
// an extended attribute; grown large) or whose engine lets processes
// outlive a run is made afresh; the run directory and log are still
// reused. A task directory chmodded is reset and reused.
func TestRunDirNotReusedWhenUnlikeFresh(t *testing.T) {
	growDir := func(d string) error {
		for i := 0; i < 2000; i++ {
			f, err := os.Create(filepath.Join(d, fmt.Sprintf("a-rather-long-file-name-%06d", i)))
			if err != nil {
				return err
			}
			_ = f.Close()
		}
		return nil
	}
	cases := []struct {
		name       string
		check      func(t *testing.T) // may skip the case
		mess       func(dir string) error
		cgroupless bool
		reused     bool
	}{
		{name: "chmod 0700", mess: func(d string) error { return os.Chmod(d, 0o700) }, reused: true},
		{name: "chmod 1777", mess: func(d string) error { return os.Chmod(d, 0o777|os.ModeSticky) }, reused: true},
		{name: "other owner", check: func(t *testing.T) {
			if os.Geteuid() != 0 {
				t.Skip("chown needs root")
			}
		}, mess: func(d string) error { return os.Chown(d, 65534, 65534) }},
		{name: "xattr", check: func(t *testing.T) {
			if err := unix.Setxattr(t.TempDir(), "user.workergen-test", []byte("x"), 0); err != nil {
				t.Skipf("no user extended attributes here: %v", err)
			}
		}, mess: func(d string) error { return unix.Setxattr(d, "user.workergen-test", []byte("x"), 0) }},
		{name: "grown", check: func(t *testing.T) {
			d := t.TempDir()
			fi, err := os.Stat(d)
			require.NoError(t, err)
			require.NoError(t, growDir(d))
			entries, err := os.ReadDir(d)
			require.NoError(t, err)
			for _, e := range entries {
				require.NoError(t, os.Remove(filepath.Join(d, e.Name())))
			}
			big, err := os.Stat(d)
			require.NoError(t, err)
			if big.Size() <= fi.Size() {
				t.Skip("this file system's directories do not stay grown")
			}
		}, mess: growDir},
		{name: "engine without cgroups", cgroupless: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.check != nil {
				c.check(t)
			}
			r := newReuseEnv(t, 2)
			if c.cgroupless {
				r.w.Runner.Engine = cgrouplessEngine{r.eng}
			}
			r.mess = func(i int, tc *task.Context) {
				if i == 0 && c.mess != nil {
					assert.NoError(t, c.mess(tc.TaskDir))
				}
			}
			r.run([]string{`{"output": "one\n"}`, `{"output": "two\n"}`}, nil)
			runs := r.runs()
			require.Len(t, runs, 2)
			assert.Equal(t, runs[0].runIno, runs[1].runIno, "the run directory is reused")
			assert.Equal(t, runs[0].logIno, runs[1].logIno, "the log is reused")
			if c.reused {
				assert.Equal(t, runs[0].taskIno, runs[1].taskIno, "the task directory is reused")
			} else {
				assert.NotEqual(t, runs[0].taskIno, runs[1].taskIno, "the task directory is made afresh")
			}
			assert.Empty(t, runs[1].taskEntries)
			assert.Equal(t, runs[0].taskMode, runs[1].taskMode)
			assert.Equal(t, uint32(os.Geteuid()), runs[1].taskUID)
			assert.Equal(t, "0", runs[1].taskXattrs, "no extended attributes")
		})
	}
}

// TestRunDirLogStillOpenIsNotReused: a reader that still holds the log
// when the run is cleaned up (a live log reader, a leftover process)
// keeps the first run's complete log; the next run gets a new file.
func TestRunDirLogStillOpenIsNotReused(t *testing.T) {
	r := newReuseEnv(t, 2)
	var held *os.File
	r.mess = func(i int, tc *task.Context) {
		if i == 0 {
			f, err := os.Open(tc.LogPath)
			assert.NoError(t, err)
			held = f
		}
	}
	r.run([]string{`{"output": "first run's output\n"}`, `{"output": "second run's output\n"}`}, nil)
	require.NotNil(t, held)
	defer held.Close()
	runs := r.runs()
	require.Len(t, runs, 2)
	assert.NotEqual(t, runs[0].logIno, runs[1].logIno, "the log is made afresh")
	assert.Equal(t, runs[0].taskIno, runs[1].taskIno, "the task directory is still reused")
	data, err := io.ReadAll(held)
	require.NoError(t, err)
	assert.Contains(t, string(data), "first run's output")
	assert.NotContains(t, string(data), "second run's output")
}

// TestRunDirLogOpenedWhileSpare: the spare's log is under a write lease
// (a non-blocking open is refused); an open that waits on it makes the
// next run take a new log file, and the opener sees an empty file, never
// the next run's log.
func TestRunDirLogOpenedWhileSpare(t *testing.T) {
	r := newReuseEnv(t, 2)
	type opened struct {
		f   *os.File
		err error
	}
	got := make(chan opened, 1)
	r.run([]string{`{"output": "first run's output\n"}`, `{"output": "second run's output\n"}`}, func(int) {
		spares := r.spares()
		require.Len(t, spares, 1)
		path := filepath.Join(r.w.Config.TasksDir, spares[0], logFileName)
		_, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		require.ErrorIs(t, err, unix.EWOULDBLOCK, "the spare's log is leased")
		go func() {
			f, err := os.Open(path) // waits for the lease
			got <- opened{f, err}
		}()
	})
	o := <-got
	require.NoError(t, o.err)
	defer o.f.Close()
	runs := r.runs()
	require.Len(t, runs, 2)
	assert.NotEqual(t, runs[0].logIno, runs[1].logIno, "the log is made afresh")
	data, err := io.ReadAll(o.f)
	require.NoError(t, err)
	assert.Empty(t, string(data), "the opener got the emptied spare log")
}

// TestSparesLeftByACrashAreRemoved: spares an earlier worker process left
// (also holding a read-only subtree) are gone before the first run starts.
func TestSparesLeftByACrashAreRemoved(t *testing.T) {
	r := newReuseEnv(t, 1)
	dir := r.w.Config.TasksDir
	left := []string{".spare-3", ".spare-12"}
	require.NoError(t, os.MkdirAll(filepath.Join(dir, ".spare-3", "task", "ro"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, ".spare-3", "task", "ro", "f"), nil, 0o444))
	require.NoError(t, os.Chmod(filepath.Join(dir, ".spare-3", "task", "ro"), 0o555))
	require.NoError(t, os.Mkdir(filepath.Join(dir, ".spare-12"), 0o711))
	require.NoError(t, os.Mkdir(filepath.Join(dir, ".sparely"), 0o755)) // not a spare: left alone
	var atStart []string
	r.mess = func(int, *task.Context) { atStart = r.spares() }
	id := r.env.createTask(`{"output": "hi\n"}`, 0)
	require.NoError(t, r.w.Work(context.Background()))
	assert.Equal(t, "completed", runState(r.env.status(id), 0))
	for _, l := range left {
		assert.NotContains(t, atStart, l)
		assert.NoDirExists(t, filepath.Join(dir, l))
	}
	assert.DirExists(t, filepath.Join(dir, ".sparely"))
}

// TestRunDirReuseCapacity: with capacity 3, runs running at once each
// get a directory of their own, empty, and nothing is left afterwards.
func TestRunDirReuseCapacity(t *testing.T) {
	env := newQueueEnv(t, time.Minute)
	const n = 9
	w, eng := env.worker(3, n)
	var mu sync.Mutex
	dirs := map[string]bool{}
	eng.onStart = func(tc *task.Context) {
		s := seeRun(t, tc)
		assert.Empty(t, s.taskEntries)
		mu.Lock()
		assert.False(t, dirs[tc.TaskDir], "each run its own task directory")
		dirs[tc.TaskDir] = true
		mu.Unlock()
		assert.NoError(t, os.WriteFile(filepath.Join(tc.TaskDir, "left-behind"), []byte(tc.TaskID), 0o644))
	}
	var ids []string
	for i := 0; i < n; i++ {
		ids = append(ids, env.createTask(`{"sleepMs": 20}`, 0))
	}
	require.NoError(t, w.Work(context.Background()))
	for _, id := range ids {
		assert.Equal(t, "completed", runState(env.status(id), 0))
	}
	entries, err := os.ReadDir(w.Config.TasksDir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	assert.Equal(t, []string{journalDirName}, names, strings.Join(names, " "))
}

// BenchmarkRunDir is one run's directories from start to clean-up: made
// and removed (fresh) or taken from and returned to the spares (reuse),
// with one line written to the log.
func BenchmarkRunDir(b *testing.B) {
	for _, reuse := range []bool{false, true} {
		name := map[bool]string{false: "fresh", true: "reuse"}[reuse]
		b.Run(name, func(b *testing.B) {
			dir := b.TempDir()
			log := slog.New(slog.DiscardHandler)
			var p *sparePool
			if reuse {
				p = newSparePool(dir, 2, true, log)
				defer p.close()
			}
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				runDir := filepath.Join(dir, fmt.Sprintf("slugslugslugslugslug%02d-%d", i%100, i))
				lf, err := p.makeRunDir(runDir)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = lf.WriteString("[taskcluster 2026-12-06T00:00:00.000Z] a line\n")
				_ = lf.Close()
				p.release(runDir, true, log)
			}
		})
	}
}
