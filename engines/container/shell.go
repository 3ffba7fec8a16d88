package container

import (
	"context"
	"fmt"
	"sync"

	"github.com/moby/moby/client"

	"github.com/workergen/workergen/engines"
)

var (
	_ engines.ShellSandbox = (*sandbox)(nil)
	_ engines.ImageSandbox = (*sandbox)(nil)
)

// shellCommand starts bash when the image has it, else sh, as
// `docker exec -it` users do.
var shellCommand = []string{"/bin/sh", "-c", "if command -v bash >/dev/null 2>&1; then exec bash; fi; exec sh"}

// Shell runs an interactive shell in the task's container: an exec with a
// TTY (the container's environment, user and working directory), attached
// through the Docker Engine API. The shell ends when the container ends,
// when the sandbox is killed or aborted, or when ctx ends. It returns an
// error wrapping engines.ErrNotRunning once the task has ended.
func (s *sandbox) Shell(ctx context.Context, size engines.TermSize) (engines.Shell, error) {
	var sh *execShell
	if !s.state.IfRunning(func() {
		sh = &execShell{s: s, done: make(chan struct{})}
		s.mu.Lock()
		s.shells = append(s.shells, sh)
		s.mu.Unlock()
	}) {
		return nil, fmt.Errorf("interactive shell: %w", engines.ErrNotRunning)
	}
	cs := client.ConsoleSize{Height: uint(size.Rows), Width: uint(size.Cols)}
	cr, err := s.e.cli.ExecCreate(ctx, s.id, client.ExecCreateOptions{
		TTY: true, AttachStdin: true, AttachStdout: true, AttachStderr: true,
		ConsoleSize: cs, Cmd: shellCommand,
	})
	if err != nil {
		sh.finish()
		return nil, fmt.Errorf("creating interactive shell in container %s: %w", shortID(s.id), err)
	}
	sh.id = cr.ID
	at, err := s.e.cli.ExecAttach(ctx, cr.ID, client.ExecAttachOptions{TTY: true, ConsoleSize: cs})
	if err != nil {
		sh.finish()
		return nil, fmt.Errorf("starting interactive shell in container %s: %w", shortID(s.id), err)
	}
	sh.mu.Lock()
	sh.conn = at.HijackedResponse
	closed := sh.closed
	sh.mu.Unlock()
	if closed { // the task ended meanwhile
		at.Close()
		return nil, fmt.Errorf("interactive shell: %w", engines.ErrNotRunning)
	}
	go func() {
		select {
		case <-ctx.Done():
			_ = sh.Close()
		case <-sh.done:
		}
	}()
	return sh, nil
}

// closeShells ends every interactive shell of the sandbox.
func (s *sandbox) closeShells() {
	s.mu.Lock()
	shells := s.shells
	s.shells = nil
	s.mu.Unlock()
	for _, sh := range shells {
		_ = sh.Close()
	}
}

// execShell is an exec session with a TTY.
type execShell struct {
	s    *sandbox
	id   string
	done chan struct{}

	mu       sync.Mutex
	conn     client.HijackedResponse
	closed   bool
	doneOnce sync.Once
}

var _ engines.Shell = (*execShell)(nil)

func (x *execShell) finish() { x.doneOnce.Do(func() { close(x.done) }) }

// Read reads the terminal's output; at the end of the exec it returns
// io.EOF and Done is closed.
func (x *execShell) Read(p []byte) (int, error) {
	n, err := x.conn.Reader.Read(p)
	if err != nil {
		x.finish()
	}
	return n, err
}

// Write types p into the terminal.
func (x *execShell) Write(p []byte) (int, error) { return x.conn.Conn.Write(p) }

// Resize sets the exec's terminal size.
func (x *execShell) Resize(size engines.TermSize) error {
	_, err := x.s.e.cli.ExecResize(context.Background(), x.id, client.ExecResizeOptions{Height: uint(size.Rows), Width: uint(size.Cols)})
	return err
}

// Done is closed once the shell's output has ended.
func (x *execShell) Done() <-chan struct{} { return x.done }

// Close closes the attachment, which ends the shell (its terminal hangs
// up); the container's end ends it too.
func (x *execShell) Close() error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if !x.closed {
		x.closed = true
		if x.conn.Conn != nil {
			x.conn.Close()
		}
	}
	x.finish()
	return nil
}

// Image describes the task's image: its ID and, for images loaded from an
// artifact, the artifact's sha256 (computed when it was loaded, or by
// downloading it again when the worker loaded it in an earlier life).
func (s *sandbox) Image(ctx context.Context) (engines.ImageInfo, error) {
	info := engines.ImageInfo{Hash: s.imageID}
	if s.imageArtifact == nil {
		return info, nil
	}
	h, err := s.e.images.artifactHash(ctx, s.tc, *s.imageArtifact)
	if err != nil {
		return info, err
	}
	info.ArtifactHash = h
	return info, nil
}
