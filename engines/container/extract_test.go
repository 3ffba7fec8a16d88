package container

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/workergen/workergen/engines"
)

func TestExtract(t *testing.T) {
	e := newTestEngine(t, nil)
	script := `set -e
mkdir -p /out/d/sub /out/d/sub-x /work
cd /work
printf 'hello' > /out/file.txt
printf 'rel' > /work/rel.txt
printf 'b' > /out/d/b
printf 'a' > /out/d/a
printf 'nested' > /out/d/sub/n
printf 'x' > /out/d/sub-x/y
ln -s /out/file.txt /out/link
ln -s ../file.txt /out/d/rellink
ln /out/d/a /out/d/hard
ln -s /out/d /out/dlink
mkfifo /out/d/fifo
exit 5`
	p := payload(t, "sh", "-c", script)
	r := newRun(t, e, p)
	res := runTask(t, e, r, nil)
	if res.ExitCode() != 5 {
		t.Fatalf("exit code %d; log:\n%s", res.ExitCode(), r.log.String())
	}
	ctx := context.Background()

	f, err := res.ExtractFile(ctx, "/out/file.txt")
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, f); got != "hello" || f.Size() != 5 {
		t.Fatalf("file.txt = %q (size %d)", got, f.Size())
	}
	if got := readAll(t, f); got != "hello" {
		t.Fatalf("second Open = %q", got)
	}
	if f, err = res.ExtractFile(ctx, "/out/link"); err != nil || readAll(t, f) != "hello" {
		t.Fatalf("symlink: %v", err)
	}
	if _, err := res.ExtractFile(ctx, "/out/missing"); !errors.Is(err, engines.ErrNotFound) {
		t.Fatalf("missing file: %v, want ErrNotFound", err)
	}
	if _, err := res.ExtractFile(ctx, "/out/d"); !errors.Is(err, engines.ErrNotAFile) {
		t.Fatalf("directory as file: %v, want ErrNotAFile", err)
	}
	if err := res.ExtractFolder(ctx, "/out/file.txt", func(string, engines.File) error { return nil }); !errors.Is(err, engines.ErrNotAFolder) {
		t.Fatalf("file as folder: %v, want ErrNotAFolder", err)
	}
	if err := res.ExtractFolder(ctx, "/nope", func(string, engines.File) error { return nil }); !errors.Is(err, engines.ErrNotFound) {
		t.Fatalf("missing folder: %v, want ErrNotFound", err)
	}

	for _, dir := range []string{"/out/d", "/out/dlink", "/out/d/"} {
		var got []string
		err := res.ExtractFolder(ctx, dir, func(rel string, f engines.File) error {
			got = append(got, rel+"="+readAll(t, f))
			if f.HostPath() == "" {
				t.Errorf("%s: no host path", rel)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		// WalkDir order: "sub" before "sub-x" although "sub-x" < "sub/n".
		want := "a=a b=b hard=a sub/n=nested sub-x/y=x"
		if strings.Join(got, " ") != want {
			t.Errorf("ExtractFolder(%s) = %v, want %s", dir, got, want)
		}
	}
	stop := errors.New("stop")
	if err := res.ExtractFolder(ctx, "/out/d", func(string, engines.File) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("fn error not returned: %v", err)
	}
}

func TestExtractRelativeToWorkingDir(t *testing.T) {
	e := newTestEngine(t, nil)
	r := newRun(t, e, payload(t, "sh", "-c", "printf rel > /rel.txt"))
	res := runTask(t, e, r, nil)
	f, err := res.ExtractFile(context.Background(), "rel.txt")
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, f); got != "rel" {
		t.Fatalf("got %q", got)
	}
}

func TestExtractAfterKillAndSpoolRemoved(t *testing.T) {
	e := newTestEngine(t, nil)
	r := newRun(t, e, payload(t, "sh", "-c", "mkdir /o; echo x > /o/f; echo started; sleep 600"))
	ctx := testCtx(t)
	b, err := e.NewSandboxBuilder(ctx, r.tc)
	if err != nil {
		t.Fatal(err)
	}
	s, err := b.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for !strings.Contains(r.log.String(), "started") {
		select {
		case <-ctx.Done():
			t.Fatal("task did not start")
		case <-time.After(20 * time.Millisecond):
		}
	}
	if err := s.Kill(); err != nil {
		t.Fatal(err)
	}
	res, err := s.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var host string
	if err := res.ExtractFolder(ctx, "/o", func(rel string, f engines.File) error {
		host = f.HostPath()
		if got := readAll(t, f); got != "x\n" {
			t.Errorf("%s = %q", rel, got)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := res.Dispose(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(host); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("spooled file %s left after Dispose: %v", host, err)
	}
}
