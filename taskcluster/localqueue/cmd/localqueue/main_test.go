//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/taskcluster"
	"github.com/workergen/workergen/taskcluster/localqueue"
)

// The tests read process groups from /proc (hence linux only).

// TestMain makes the test binary the localqueue command when
// LOCALQUEUE_TEST_MAIN=1, so the tests run it as a real process.
func TestMain(m *testing.M) {
	if os.Getenv("LOCALQUEUE_TEST_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestServeCreateSignals runs `localqueue serve` as a process in its own
// process group on a free port, adds tasks with `localqueue create` from
// task files (examples/ and the shared corpus), sees them pending through
// the Queue API, then stops it with SIGTERM to the process, starts it again
// on the same state directory, and stops it with SIGINT to the process
// group (as a terminal's Ctrl-C does). Each time the process exits 0, no
// process of its group is left and the port is free.
func TestServeCreateSignals(t *testing.T) {
	dir := t.TempDir()
	files, names := taskFilesForTest(t)

	for round, sig := range []struct {
		name  string
		group bool
		sig   syscall.Signal
	}{{"SIGTERM to the process", false, syscall.SIGTERM}, {"SIGINT to the process group", true, syscall.SIGINT}} {
		t.Logf("round %d: %s", round, sig.name)
		p := startProc(t, "", os.Args[0], []string{"LOCALQUEUE_TEST_MAIN=1"}, "serve", "-addr", "127.0.0.1:0", "-dir", dir)
		rootURL := p.field(t, "rootUrl:", time.Minute)
		creds := readCredentials(t, dir)
		require.Equal(t, rootURL, creds.RootURL)
		// The start banner: where the credentials and state are, how to
		// create tasks and a worker config (also in DIR/worker.json).
		require.Equal(t, filepath.Join(dir, localqueue.CredentialsFileName)+" (clientId local, scope *)", p.field(t, "credentials:", time.Minute))
		require.Equal(t, dir, p.field(t, "state:", time.Minute))
		require.Equal(t, "localqueue create -dir "+dir+" FILE...", p.field(t, "create tasks:", time.Minute))
		workerJSON := p.field(t, "worker.json:", time.Minute)
		kept, err := os.ReadFile(filepath.Join(dir, localqueue.WorkerConfigFileName))
		require.NoError(t, err)
		require.JSONEq(t, workerJSON, string(kept))
		require.JSONEq(t, fmt.Sprintf(`{"rootUrl": %q, "credentials": {"clientId": "local", "accessToken": %q},
			"workerPoolId": "workergen/local", "workerGroup": "local", "workerId": "local-1"}`, rootURL, creds.AccessToken), workerJSON)

		out, code := runCmd(t, "", os.Args[0], []string{"LOCALQUEUE_TEST_MAIN=1"}, append([]string{"create", "-dir", dir}, files...)...)
		require.Equal(t, 0, code, out)
		ids := createdIDs(t, out, files)
		requirePending(t, creds, ids, names)

		if sig.group {
			require.NoError(t, syscall.Kill(-p.cmd.Process.Pid, sig.sig))
		} else {
			require.NoError(t, p.cmd.Process.Signal(sig.sig))
		}
		require.NoError(t, p.wait(t, time.Minute), p.output())
		requireGroupGoneAndPortFree(t, p.cmd.Process.Pid, rootURL)
		require.Contains(t, p.allOutput(), "stopping:")
	}
}

// TestCreateBadFile: a bad task file makes create exit 64 with the file
// and the field named, and creates no task, not even from the good files
// given with it.
func TestCreateBadFile(t *testing.T) {
	dir := t.TempDir()
	p := startProc(t, "", os.Args[0], []string{"LOCALQUEUE_TEST_MAIN=1"}, "-addr", "127.0.0.1:0", "-dir", dir)
	p.field(t, "rootUrl:", time.Minute)
	good := filepath.Join(repoRoot(t), "examples", "hello-world.yml")
	tasks := t.TempDir()
	for _, tc := range []struct{ file, body, want string }{
		{"past.yml", "taskQueueId: a/b\ncreated: '{{now-2h}}'\ndeadline: '{{now-1h}}'\nmetadata: {name: n, description: d, owner: o@example.com, source: 'https://example.com'}\npayload: {}\n", "deadline:"},
		{"source.yml", "taskQueueId: a/b\ndeadline: '{{now+1h}}'\nmetadata: {name: n, description: d, owner: o@example.com, source: 'file:///x'}\npayload: {}\n", "metadata.source"},
		{"queue.json", `{"deadline": "{{now+1h}}", "metadata": {"name": "n", "description": "d", "owner": "o@example.com", "source": "https://example.com"}, "payload": {}}`, "taskQueueId: missing"},
		{"yaml.yml", "taskQueueId: a/b\npayload: {command: [[true]]\n", "yaml.yml"},
	} {
		path := filepath.Join(tasks, tc.file)
		require.NoError(t, os.WriteFile(path, []byte(tc.body), 0o644))
		out, code := runCmd(t, "", os.Args[0], []string{"LOCALQUEUE_TEST_MAIN=1"}, "create", "-dir", dir, good, path)
		require.Equal(t, 64, code, out)
		require.Contains(t, out, path+": ")
		require.Contains(t, out, tc.want)
		require.NotContains(t, out, "created task")
	}
	out, code := runCmd(t, "", os.Args[0], []string{"LOCALQUEUE_TEST_MAIN=1"}, "create", "-dir", dir, filepath.Join(tasks, "missing.yml"))
	require.Equal(t, 64, code, out)
	require.Contains(t, out, "missing.yml")
	out, code = runCmd(t, "", os.Args[0], []string{"LOCALQUEUE_TEST_MAIN=1"}, "create", "-dir", t.TempDir(), good)
	require.Equal(t, 64, code, out)
	require.Contains(t, out, localqueue.CredentialsFileName)

	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, p.wait(t, time.Minute), p.output())
	require.Contains(t, p.allOutput(), "no tasks were created in this Queue") // the resolutions: none
	require.NotContains(t, p.allOutput(), "pending")
}

// TestMageQueue runs the README's `go tool mage queue` (go tool -> mage ->
// the compiled magefile, which serves in its own process) and
// `go tool mage queue:create` with two task files given unquoted, sees the
// tasks pending, and stops it with SIGTERM to the top process (`go`),
// which passes it to mage, which dies without passing it on, and then,
// restarted on the same state directory, with SIGINT to the process group.
// Each time no process of the group is left and the port is free.
func TestMageQueue(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles the magefile")
	}
	root := repoRoot(t)
	dir := t.TempDir()
	files, names := taskFilesForTest(t)
	// A magefile binary of this test's own, compiled once: otherwise mage
	// rebuilds it on every run, each time writing and removing
	// magefiles/mage_output_file.go, and other tests run mage too.
	env := []string{"MAGEFILE_CACHE=" + t.TempDir(), "MAGEFILE_HASHFAST=1"}

	for round, group := range []bool{false, true} {
		p := startProc(t, root, "go", env, "tool", "mage", "queue", "-addr=127.0.0.1:0", "-dir="+dir)
		rootURL := p.field(t, "rootUrl:", 10*time.Minute) // the first run compiles the magefile
		creds := readCredentials(t, dir)
		out, code := runCmd(t, root, "go", env, append(append([]string{"tool", "mage", "queue:create"}, files...), "-dir="+dir)...)
		require.Equal(t, 0, code, out)
		ids := createdIDs(t, out, files)
		requirePending(t, creds, ids, names)

		if group {
			t.Logf("round %d: SIGINT to the process group", round)
			require.NoError(t, syscall.Kill(-p.cmd.Process.Pid, syscall.SIGINT))
			require.NoError(t, p.wait(t, time.Minute), p.output())
		} else {
			t.Logf("round %d: SIGTERM to `go`", round)
			require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
			_ = p.wait(t, time.Minute) // go reports mage killed by the signal
		}
		requireGroupGoneAndPortFree(t, p.cmd.Process.Pid, rootURL)
		require.Contains(t, p.allOutput(), "stopping:")
	}

	// SIGKILL to `go`: mage is left, its parent gone; the server sees
	// that and stops, and mage with it.
	p := startProc(t, root, "go", env, "tool", "mage", "queue", "-addr=127.0.0.1:0", "-dir="+dir)
	rootURL := p.field(t, "rootUrl:", 10*time.Minute)
	t.Log("SIGKILL to `go`")
	require.NoError(t, p.cmd.Process.Kill())
	_ = p.wait(t, time.Minute)
	requireGroupGoneAndPortFree(t, p.cmd.Process.Pid, rootURL)
	require.Contains(t, p.allOutput(), "stopping: the launching process go")

	// A bad file: exit 64 naming the file and the field.
	bad := filepath.Join(t.TempDir(), "bad.yml")
	require.NoError(t, os.WriteFile(bad, []byte("taskQueueId: a/b\ndeadline: '{{now+1h}}'\npayload: {}\n"), 0o644))
	p = startProc(t, root, "go", env, "tool", "mage", "queue", "-addr=127.0.0.1:0", "-dir="+dir)
	rootURL = p.field(t, "rootUrl:", 10*time.Minute)
	out, code := runCmd(t, root, "go", env, "tool", "mage", "queue:create", bad, "-dir="+dir)
	require.Equal(t, 64, code, out)
	require.Contains(t, out, bad+": metadata: missing")
	require.NoError(t, syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM))
	_ = p.wait(t, time.Minute)
	requireGroupGoneAndPortFree(t, p.cmd.Process.Pid, rootURL)
}

// TestGoRunSIGTERM: `go run` dies of SIGTERM without passing it on; the
// command it ran sees its launcher gone and stops, freeing the port.
func TestGoRunSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the command with go run")
	}
	p := startProc(t, repoRoot(t), "go", nil, "run", "./taskcluster/localqueue/cmd/localqueue", "-addr", "127.0.0.1:0", "-dir", t.TempDir())
	rootURL := p.field(t, "rootUrl:", 10*time.Minute)
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	_ = p.wait(t, time.Minute)
	requireGroupGoneAndPortFree(t, p.cmd.Process.Pid, rootURL)
	require.Contains(t, p.allOutput(), "stopping: the launching process go")
}

func repoRoot(t testing.TB) string {
	dir, err := os.Getwd()
	require.NoError(t, err)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		require.NotEqual(t, parent, dir, "no go.mod above the test")
		dir = parent
	}
}

// taskFilesForTest returns task files as people write them and the
// metadata.name of each: two of examples/ and, when the shared reference
// material is there, one of corpus/real-tasks (another task queue).
func taskFilesForTest(t *testing.T) (files, names []string) {
	root := repoRoot(t)
	files = []string{filepath.Join(root, "examples", "hello-world.yml"), filepath.Join(root, "examples", "failing.yml")}
	names = []string{"hello world", "a failing test suite"}
	corpus := filepath.Join(root, "..", "shared", "corpus", "real-tasks", "004-tutorial-hello-world.json")
	if _, err := os.Stat(corpus); err == nil {
		files = append(files, corpus)
		names = append(names, "Example Task")
	} else {
		t.Logf("no shared corpus (%v): examples/ only", err)
	}
	return files, names
}

func readCredentials(t *testing.T, dir string) localqueue.StandaloneCredentials {
	data, err := os.ReadFile(filepath.Join(dir, localqueue.CredentialsFileName))
	require.NoError(t, err)
	var c localqueue.StandaloneCredentials
	require.NoError(t, json.Unmarshal(data, &c))
	return c
}

// createdIDs reads create's "created task <taskId> from <file> ..." lines,
// one per file in order.
func createdIDs(t *testing.T, out string, files []string) []string {
	var ids []string
	for _, line := range strings.Split(out, "\n") {
		rest, ok := strings.CutPrefix(line, "created task ")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		require.GreaterOrEqual(t, len(f), 3, line)
		require.Equal(t, files[len(ids)], f[2], line)
		ids = append(ids, f[0])
	}
	require.Len(t, ids, len(files), out)
	return ids
}

// requirePending checks through the Queue API (Hawk-signed, with the
// state directory's credentials) that each task is pending with its name.
func requirePending(t *testing.T, creds localqueue.StandaloneCredentials, ids, names []string) {
	q := (&taskcluster.Client{RootURL: creds.RootURL, Credentials: taskcluster.StaticCredentials(taskcluster.Credentials{ClientID: creds.ClientID, AccessToken: creds.AccessToken})}).Queue()
	ctx := context.Background()
	for i, id := range ids {
		st, err := q.Status(ctx, id)
		require.NoError(t, err)
		require.Equal(t, "pending", st.Status.State, id)
		def, err := q.Task(ctx, id)
		require.NoError(t, err)
		require.Equal(t, names[i], def.Metadata.Name)
	}
}

// requireGroupGoneAndPortFree waits until no live (non-zombie) process of
// process group pgid is left, then checks that rootURL's port can be
// listened on again.
func requireGroupGoneAndPortFree(t *testing.T, pgid int, rootURL string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	var left []string
	for {
		left = liveGroupMembers(t, pgid)
		if len(left) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	require.Empty(t, left, "processes of group %d left running", pgid)
	u, err := url.Parse(rootURL)
	require.NoError(t, err)
	ln, err := net.Listen("tcp", u.Host)
	require.NoError(t, err, "port of %s still in use", rootURL)
	require.NoError(t, ln.Close())
}

// liveGroupMembers lists "pid (comm) state" of the processes in process
// group pgid that are not zombies, from /proc/<pid>/stat.
func liveGroupMembers(t *testing.T, pgid int) []string {
	entries, err := os.ReadDir("/proc")
	require.NoError(t, err)
	var out []string
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // exited meanwhile
		}
		s := string(data)
		end := strings.LastIndexByte(s, ')')
		if end < 0 {
			continue
		}
		f := strings.Fields(s[end+1:]) // state ppid pgrp ...
		if len(f) < 3 || f[2] != strconv.Itoa(pgid) || f[0] == "Z" || f[0] == "X" {
			continue
		}
		out = append(out, fmt.Sprintf("%s %s", s[:end+1], f[0]))
	}
	return out
}

// proc is a command started in its own process group, its stdout read
// line by line. Its output goes to pipes of its own (not copied by
// exec.Cmd), so waiting for it does not wait for processes it left behind
// that hold them.
type proc struct {
	cmd   *exec.Cmd
	lines chan string
	mu    sync.Mutex
	out   bytes.Buffer
	done  chan error
	eof   sync.WaitGroup // both pipes read to their end
}

func (p *proc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

// output is what the process printed so far.
func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

func startProc(t *testing.T, dir, name string, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p := &proc{cmd: cmd, lines: make(chan string, 100), done: make(chan error, 1)}
	stdoutR, stdoutW, err := os.Pipe()
	require.NoError(t, err)
	stderrR, stderrW, err := os.Pipe()
	require.NoError(t, err)
	cmd.Stdout, cmd.Stderr = stdoutW, stderrW
	err = cmd.Start()
	_ = stdoutW.Close()
	_ = stderrW.Close()
	require.NoError(t, err)
	pgid := cmd.Process.Pid
	t.Cleanup(func() { _ = syscall.Kill(-pgid, syscall.SIGKILL) })
	p.eof.Add(2)
	go func() {
		defer p.eof.Done()
		defer stdoutR.Close()
		sc := bufio.NewScanner(stdoutR)
		for sc.Scan() {
			_, _ = p.Write([]byte(sc.Text() + "\n"))
			select {
			case p.lines <- sc.Text():
			default:
			}
		}
		close(p.lines)
	}()
	go func() {
		defer p.eof.Done()
		defer stderrR.Close()
		_, _ = io.Copy(p, stderrR)
	}()
	go func() { p.done <- cmd.Wait() }()
	return p
}

// field waits for a stdout line "  <key> <value>" and returns the value.
func (p *proc) field(t *testing.T, key string, timeout time.Duration) string {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				t.Fatalf("exited before printing %q:\n%s", key, p.output())
			}
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), key); ok {
				return strings.TrimSpace(v)
			}
		case <-timer.C:
			t.Fatalf("no %q within %s:\n%s", key, timeout, p.output())
		}
	}
}

// allOutput waits until every process holding the output pipes exited
// and returns the whole output.
func (p *proc) allOutput() string {
	p.eof.Wait()
	return p.output()
}

func (p *proc) wait(t *testing.T, timeout time.Duration) error {
	t.Helper()
	select {
	case err := <-p.done:
		return err
	case <-time.After(timeout):
		t.Fatalf("%s still running %s after the signal:\n%s", p.cmd.Args[0], timeout, p.output())
		return nil
	}
}

// runCmd runs a command to its end and returns its combined output and
// exit code.
func runCmd(t *testing.T, dir, name string, env []string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return string(out), exit.ExitCode()
	}
	require.NoError(t, err, string(out))
	return string(out), 0
}
