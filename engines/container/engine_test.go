package container

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/task"
)

func TestRunOutputAndExitCode(t *testing.T) {
	e := newTestEngine(t, nil)
	r := newRun(t, e, payload(t, "sh", "-c", `echo err >&2; sleep 0.2; echo out; printf 'no newline'`))
	res := runTask(t, e, r, nil)
	if !res.Success() || res.ExitCode() != 0 || res.Killed() || res.OOM() {
		t.Fatalf("result: success=%v exit=%d killed=%v oom=%v", res.Success(), res.ExitCode(), res.Killed(), res.OOM())
	}
	log := r.log.String()
	for _, want := range []string{"out\n", "err\n", "no newline"} {
		if !strings.Contains(log, want) {
			t.Errorf("task log lacks %q:\n%s", want, log)
		}
	}
	if !strings.HasSuffix(log, "no newline") {
		t.Errorf("task log should end with the task's last partial line:\n%q", log)
	}

	r = newRun(t, e, payload(t, "sh", "-c", "exit 3"))
	res = runTask(t, e, r, nil)
	if res.Success() || res.ExitCode() != 3 || res.Killed() {
		t.Fatalf("exit 3: success=%v exit=%d killed=%v", res.Success(), res.ExitCode(), res.Killed())
	}
}

func TestOutputIsLive(t *testing.T) {
	e := newTestEngine(t, nil)
	r := newRun(t, e, payload(t, "sh", "-c", `echo first-line; while [ ! -e /tmp/go ]; do sleep 0.05; done; echo never`))
	ctx := testCtx(t)
	b, err := e.NewSandboxBuilder(ctx, r.tc)
	if err != nil {
		t.Fatal(err)
	}
	s, err := b.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for !strings.Contains(r.log.String(), "first-line\n") {
		if time.Now().After(deadline) {
			t.Fatalf("output did not reach the task log while the task ran; log:\n%s", r.log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := s.Kill(); err != nil {
		t.Fatal(err)
	}
	res, err := s.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Dispose()
	if !res.Killed() || res.ExitCode() != -1 || res.OOM() || res.Success() {
		t.Fatalf("killed task: killed=%v exit=%d oom=%v success=%v", res.Killed(), res.ExitCode(), res.OOM(), res.Success())
	}
	if strings.Contains(r.log.String(), "never") {
		t.Fatal("task went on after Kill")
	}
}

func TestEnv(t *testing.T) {
	e := newTestEngine(t, nil)
	r := newRun(t, e, payload(t, "sh", "-c", `printf '%s|%s|%s' "$A" "$B" "$MULTI"`))
	ctx := testCtx(t)
	b, err := e.NewSandboxBuilder(ctx, r.tc)
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("x", 100000)
	for k, v := range map[string]string{"A": "1", "B": long, "MULTI": "a\nb = c"} {
		if err := b.SetEnv(k, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.SetEnv("A", "2"); !errors.Is(err, engines.ErrEnvConflict) {
		t.Errorf("second SetEnv(A) = %v, want ErrEnvConflict", err)
	}
	for _, bad := range []string{"", "X=Y", "X\x00"} {
		if err := b.SetEnv(bad, "v"); !errors.Is(err, engines.ErrInvalidEnvName) {
			t.Errorf("SetEnv(%q) = %v, want ErrInvalidEnvName", bad, err)
		}
	}
	if err := b.SetEnv("NUL", "a\x00b"); !errors.Is(err, engines.ErrInvalidEnvValue) {
		t.Errorf("SetEnv with NUL value = %v, want ErrInvalidEnvValue", err)
	}
	s, err := b.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Dispose()
	if want := "1|" + long + "|a\nb = c"; !strings.Contains(r.log.String(), want) {
		t.Fatalf("env not passed; log: %.300q", r.log.String())
	}
}

func TestAbort(t *testing.T) {
	e := newTestEngine(t, nil)
	r := newRun(t, e, payload(t, "sleep", "600"))
	ctx := testCtx(t)
	b, err := e.NewSandboxBuilder(ctx, r.tc)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := b.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := sb.Abort(); err != nil {
		t.Fatal(err)
	}
	if err := sb.Abort(); err != nil {
		t.Fatalf("second Abort: %v", err)
	}
	if _, err := sb.Wait(ctx); !errors.Is(err, engines.ErrAborted) {
		t.Fatalf("Wait after Abort = %v, want ErrAborted", err)
	}
	if _, err := e.cli.ContainerInspect(ctx, sb.(*sandbox).id, containerInspectOpts); err == nil {
		t.Fatal("container still exists after Abort")
	}
}

func TestCommandNotFound(t *testing.T) {
	e := newTestEngine(t, nil)
	r := newRun(t, e, payload(t, "/no/such/command"))
	ctx := testCtx(t)
	b, err := e.NewSandboxBuilder(ctx, r.tc)
	if err != nil {
		t.Fatal(err)
	}
	s, err := b.Start(ctx)
	if err != nil {
		var ee *task.ExceptionError
		if errors.As(err, &ee) && ee.Reason == task.ReasonInternalError {
			t.Fatalf("a missing command is the task's fault, not internal-error: %v", err)
		}
		t.Logf("Start: %v", err)
		return
	}
	res, err := s.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Dispose()
	if res.Success() {
		t.Fatal("missing command succeeded")
	}
	t.Logf("exit code %d; log: %s", res.ExitCode(), r.log.String())
}

func TestOOM(t *testing.T) {
	e := newTestEngine(t, map[string]any{"memoryLimit": 64 << 20})
	// tail keeps a line without newline in memory: 512 MiB of zeros.
	r := newRun(t, e, payload(t, "sh", "-c", "head -c 536870912 /dev/zero | tail > /dev/null"))
	res := runTask(t, e, r, nil)
	if !res.OOM() || res.Killed() || res.Success() {
		t.Fatalf("oom=%v killed=%v success=%v exit=%d; log:\n%s", res.OOM(), res.Killed(), res.Success(), res.ExitCode(), r.log.String())
	}
}

func readAll(t *testing.T, f engines.File) string {
	t.Helper()
	rc, err := f.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestTTY(t *testing.T) {
	e := newTestEngine(t, map[string]any{"tty": true})
	r := newRun(t, e, payload(t, "sh", "-c", `[ -t 1 ] && echo is-a-tty; echo to-stderr >&2; exit 4`))
	res := runTask(t, e, r, nil)
	if res.ExitCode() != 4 {
		t.Fatalf("exit code %d", res.ExitCode())
	}
	log := r.log.String()
	if !strings.Contains(log, "is-a-tty\r\n") || !strings.Contains(log, "to-stderr\r\n") {
		t.Fatalf("tty output not in the log as a terminal writes it:\n%q", log)
	}
}

func TestDockerWorkerContainerDefaults(t *testing.T) {
	e := newTestEngine(t, nil)
	r := newRun(t, e, payload(t, "sh", "-c", `grep -q 'localhost.localdomain' /etc/hosts && echo has-localdomain; cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max`))
	res := runTask(t, e, r, nil)
	if !res.Success() {
		t.Fatalf("failed:\n%s", r.log.String())
	}
	log := r.log.String()
	if !strings.Contains(log, "has-localdomain") {
		t.Errorf("localhost.localdomain not in /etc/hosts:\n%s", log)
	}
	if !strings.Contains(log, "max") {
		t.Errorf("pids not unlimited:\n%s", log)
	}
}

func TestEmptyCommandUsesImageDefault(t *testing.T) {
	e := newTestEngine(t, nil)
	// The test image's CMD is /bin/sh, which exits at once on empty stdin.
	r := newRun(t, e, map[string]any{"image": testImage(t), "maxRunTime": 60})
	if res := runTask(t, e, r, nil); !res.Success() {
		t.Fatalf("image default command failed: exit %d\n%s", res.ExitCode(), r.log.String())
	}
}

func TestEmptyCommandWithoutImageDefault(t *testing.T) {
	e := newTestEngine(t, nil)
	ctx := testCtx(t)
	// An image without CMD: the test image's file system, imported bare.
	cr, err := e.cli.ContainerCreate(ctx, client.ContainerCreateOptions{Image: testImage(t), Config: &container.Config{Cmd: []string{"true"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.cli.ContainerRemove(context.Background(), cr.ID, client.ContainerRemoveOptions{Force: true})
	exp, err := e.cli.ContainerExport(ctx, cr.ID, client.ContainerExportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	name := "localhost/workergen-test-nocmd:" + strings.ToLower(uniqueID("t"))
	imp, err := e.cli.ImageImport(ctx, client.ImageImportSource{Source: exp, SourceName: "-"}, name, client.ImageImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, imp)
	imp.Close()
	exp.Close()
	defer e.cli.ImageRemove(context.Background(), name, client.ImageRemoveOptions{})
	_, err = e.NewSandboxBuilder(ctx, newRun(t, e, map[string]any{"image": name, "maxRunTime": 60}).tc)
	wantException(t, err, task.ReasonMalformedPayload, "payload.command", "no default command")
}

// A socket no daemon answers on is the host's problem, not the config's:
// NewEngine's error wraps engines.ErrHostUnavailable (the worker exits 69)
// and names engine.socket.
func TestUnreachableDaemonIsHostUnavailable(t *testing.T) {
	socket := "unix://" + t.TempDir() + "/none.sock"
	_, err := New(engines.Options{Config: []byte(`{"socket": "` + socket + `"}`)})
	if !errors.Is(err, engines.ErrHostUnavailable) {
		t.Fatalf("error %v does not wrap engines.ErrHostUnavailable", err)
	}
	if !strings.Contains(err.Error(), "engine.socket") || !strings.Contains(err.Error(), socket) {
		t.Errorf("error %q does not name engine.socket and %s", err, socket)
	}
}
