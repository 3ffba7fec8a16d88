package container

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/engines/sandboxstate"
	"github.com/workergen/workergen/task"
)

// builder collects env and caches before the container is created.
type builder struct {
	e             *Engine
	tc            *task.Context
	payload       Payload
	imageID       string
	imageArtifact *imageArtifact // the artifact a task image was loaded from, or nil
	releaseImage  func()

	mu      sync.Mutex
	env     map[string]string
	caches  []cacheRequest
	hosts   []string // extra /etc/hosts entries, "name:ip"
	started bool
	done    bool                  // Start or Discard called
	report  func(engines.Handles) // ReportHandles
}

type cacheRequest struct{ name, mountPath string }

// MaxEnvEntry is the largest len(name)+len(value)+2 SetEnv accepts: Linux
// refuses to exec with one environment string over MAX_ARG_STRLEN (128 KiB).
const MaxEnvEntry = 128 << 10

// SetEnv implements engines.SandboxBuilder. Names are refused when empty or
// holding '=' or NUL; values holding NUL or longer than MaxEnvEntry with
// their name are refused with engines.ErrInvalidEnvValue, and so are values
// that are not valid UTF-8: the API passes the environment as JSON strings,
// which would silently replace such bytes.
func (b *builder) SetEnv(name, value string) error {
	if err := engines.CheckEnv(name, value); err != nil {
		return err
	}
	if !utf8.ValidString(value) {
		return fmt.Errorf("%w: value of %s is not valid UTF-8, which the Docker Engine API (JSON) cannot carry unchanged", engines.ErrInvalidEnvValue, name)
	}
	if n := len(name) + len(value) + 2; n > MaxEnvEntry {
		return fmt.Errorf("%w: %s: %d bytes with its name, over the %d-byte limit of one variable", engines.ErrInvalidEnvValue, name, n, MaxEnvEntry)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.env[name]; ok {
		return fmt.Errorf("%w: %s", engines.ErrEnvConflict, name)
	}
	b.env[name] = value
	return nil
}

// AttachCache implements engines.VolumeBuilder.
func (b *builder) AttachCache(name, mountPath string) error {
	if name == "" {
		return errors.New("cache name must not be empty")
	}
	if !path.IsAbs(mountPath) {
		return fmt.Errorf("mount path %q must be absolute", mountPath)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range b.caches {
		if path.Clean(c.mountPath) == path.Clean(mountPath) {
			return fmt.Errorf("mount path %q already used by cache %q", mountPath, c.name)
		}
	}
	b.caches = append(b.caches, cacheRequest{name, mountPath})
	return nil
}

// Discard implements engines.SandboxBuilder.
func (b *builder) Discard() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return nil
	}
	b.done = true
	b.releaseImage()
	return nil
}

// Start acquires the run's cache volumes, compiles the container's spec
// (compileSpec) and launches it: create, attach to its output, start.
func (b *builder) Start(ctx context.Context) (engines.Sandbox, error) {
	in, reqs, err := b.take()
	if err != nil {
		return nil, err
	}
	s := &sandbox{
		e: b.e, tc: b.tc, releaseImage: b.releaseImage, state: sandboxstate.New(),
		imageID: b.imageID, imageArtifact: b.imageArtifact,
		output: discardOutput, outputDone: make(chan struct{}), report: b.reportFn(),
	}
	if s.tc.Log != nil {
		s.output = s.tc.Log
	}
	keep := false
	defer func() {
		if !keep {
			s.cleanup(context.WithoutCancel(ctx), false)
		}
	}()
	for _, r := range reqs {
		use, err := s.e.caches.acquire(ctx, s.tc, r.name, r.mountPath)
		if err != nil {
			return nil, err
		}
		s.caches = append(s.caches, use)
		in.volumes = append(in.volumes, volumeMount{volume: use.volume, target: use.mountPath})
	}
	if err := s.launch(ctx, compileSpec(in)); err != nil {
		return nil, err
	}
	keep = true
	return s, nil
}

// take ends the builder's use (Start and Discard are no-ops from now on)
// and returns what it gathered: the spec's input, without volumes, and
// the caches to acquire.
func (b *builder) take() (specInput, []cacheRequest, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return specInput{}, nil, errors.New("sandbox builder already started or discarded")
	}
	b.done = true
	in := specInput{
		cfg: b.e.cfg, payload: b.payload, imageID: b.imageID,
		env: maps.Clone(b.env), hosts: slices.Clone(b.hosts), labels: b.e.runLabels(b.tc),
	}
	return in, slices.Clone(b.caches), nil
}

// launch creates the container of sp, attaches to its output and starts
// it; then run waits for its end. A command that cannot be started
// (missing from the image, not executable) is not an error: the sandbox
// has ended with exit code 127 or 126, as a shell would report.
func (s *sandbox) launch(ctx context.Context, sp spec) error {
	cli := s.e.cli
	cr, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{Config: sp.config, HostConfig: sp.hostConfig, Name: containerName(s.tc)})
	if err != nil {
		return startError("creating container", err)
	}
	s.id = cr.ID
	if s.report != nil {
		s.report(engines.Handles{Container: s.id})
	}
	att, err := cli.ContainerAttach(ctx, s.id, client.ContainerAttachOptions{Stream: true, Stdout: true, Stderr: true})
	if err != nil {
		// Podman prepares the container when attaching: a command missing
		// from the image shows up here as a bare 409. Starting it tells why.
		if _, serr := cli.ContainerStart(ctx, s.id, client.ContainerStartOptions{}); serr != nil {
			if code, ok := execFailure(serr); ok {
				s.endedBeforeStart(code, serr)
				return nil
			}
		}
		return startError("attaching to container", err)
	}
	s.attach = att.HijackedResponse
	go s.copyOutput()
	s.started = time.Now()
	if _, err := cli.ContainerStart(ctx, s.id, client.ContainerStartOptions{}); err != nil {
		s.attach.Close()
		<-s.outputDone
		if code, ok := execFailure(err); ok {
			s.endedBeforeStart(code, err)
			return nil
		}
		return startError("starting container", err)
	}
	if s.e.cfg.MemoryLimit > 0 {
		if in, err := cli.ContainerInspect(ctx, s.id, client.ContainerInspectOptions{}); err == nil && in.Container.State != nil {
			s.oom = watchOOM(in.Container.State.Pid, s.id)
		}
	}
	go s.run()
	return nil
}

// execFailure tells a start error caused by the task's command (missing
// from the image, not executable) and the exit code a shell would give:
// 127 for not found, 126 for not executable.
func execFailure(err error) (int, bool) {
	msg := strings.ToLower(err.Error())
	if !strings.Contains(msg, "exec") && !strings.Contains(msg, "oci runtime") {
		return 0, false
	}
	switch {
	case strings.Contains(msg, "not found"), strings.Contains(msg, "no such file or directory"):
		return 127, true
	case strings.Contains(msg, "permission denied"), strings.Contains(msg, "not executable"):
		return 126, true
	}
	return 0, false
}

// endedBeforeStart ends the sandbox of a container whose command could not
// be started: a failed result with exit code code.
func (s *sandbox) endedBeforeStart(code int, err error) {
	s.tc.Logf("the task's command could not be started: %v", err)
	if s.started.IsZero() {
		s.started = time.Now()
	}
	select {
	case <-s.outputDone:
	default:
		close(s.outputDone)
	}
	s.state.Finish(&result{s: s, exitCode: code}, nil)
}

func startError(what string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || client.IsErrConnectionFailed(err) {
		return task.ResourceUnavailable(fmt.Errorf("%s: %w", what, err))
	}
	if cerrdefs.IsInvalidArgument(err) {
		return task.MalformedPayloadf("payload: the container daemon refused the task's container: %s: %v", what, err)
	}
	return task.InternalError(fmt.Errorf("%s: %w", what, err))
}

// containerName is unique per run (and per attempt, for retried starts).
func containerName(tc *task.Context) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("workergen-%s-%d-%s", strings.ToLower(sanitizeName(tc.TaskID)), tc.RunID, hex.EncodeToString(b[:]))
}

func sanitizeName(s string) string {
	s = unsafeVolumeChars.ReplaceAllString(s, "_")
	if s == "" {
		return "task"
	}
	return s
}

// sandbox is a started container.
type sandbox struct {
	e            *Engine
	tc           *task.Context
	id           string
	report       func(engines.Handles) // from ReportHandles, or nil
	attach       client.HijackedResponse
	output       io.Writer
	caches       []*cacheUse
	releaseImage func()
	started      time.Time
	// imageID and imageArtifact describe the task's image (Image).
	imageID       string
	imageArtifact *imageArtifact
	oom           *oomWatcher // nil unless a memory limit is set and the cgroup is visible

	outputDone chan struct{} // closed when the output stream ended
	// state is the Wait/Kill/Abort state: ended when run saw the container
	// end, finished with its result.
	state *sandboxstate.State

	cleanupOnce sync.Once
	cleanupErr  error
	mu          sync.Mutex // guards spoolDirs and shells
	spoolDirs   []string
	shells      []*execShell
}

// copyOutput copies the container's output into the task log until the
// stream ends. A failing task log does not stop the copy (the container
// would block on a full pipe): the rest of the output is dropped.
func (s *sandbox) copyOutput() {
	defer close(s.outputDone)
	out := &keepDraining{w: s.output, s: s}
	var err error
	if s.e.cfg.TTY {
		_, err = io.Copy(out, s.attach.Reader)
	} else {
		_, err = stdcopy.StdCopy(out, out, s.attach.Reader)
	}
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, os.ErrClosed) && !strings.Contains(err.Error(), "use of closed network connection") {
		s.logger().Warn("reading container output", "err", err)
	}
}

// keepDraining writes to w until the first error, then discards.
type keepDraining struct {
	w      io.Writer
	s      *sandbox
	failed bool
}

func (k *keepDraining) Write(p []byte) (int, error) {
	if !k.failed {
		if _, err := k.w.Write(p); err != nil {
			k.failed = true
			k.s.logger().Error("writing container output to the task log; dropping the rest", "err", err)
		}
	}
	return len(p), nil
}

// logger is the run's structured log, or the engine's.
func (s *sandbox) logger() *slog.Logger {
	if s.tc.Logger != nil {
		return s.tc.Logger
	}
	return s.e.log
}

// Timing of the exit detection; see run.
const (
	pollMin      = 2 * time.Millisecond
	pollMax      = time.Second
	drainTimeout = 30 * time.Second
	daemonGrace  = 2 * time.Minute // how long inspect may keep failing
)

// run waits for the container to end and records the result.
func (s *sandbox) run() {
	st, err := s.waitExit()
	ended := time.Now()
	select {
	case <-s.outputDone:
	case <-time.After(drainTimeout):
		s.logger().Warn("container output did not end after the container exited; closing it", "container", shortID(s.id))
	}
	s.attach.Close()
	<-s.outputDone
	if st == nil {
		s.oom.stop()
		s.state.Finish(nil, task.InternalError(fmt.Errorf("waiting for container %s: %w", shortID(s.id), err)))
		return
	}
	killed := s.state.End() != sandboxstate.None
	s.closeShells()
	oom := st.OOMKilled || s.oom.check() && st.ExitCode != 0
	s.oom.stop()
	r := &result{s: s, exitCode: st.ExitCode, oom: oom && !killed, killed: killed}
	if killed {
		r.exitCode = -1
	}
	r.duration = ended.Sub(s.started)
	if t0, err := time.Parse(time.RFC3339Nano, st.StartedAt); err == nil {
		if t1, err := time.Parse(time.RFC3339Nano, st.FinishedAt); err == nil && t1.After(t0) {
			r.duration = t1.Sub(t0)
		}
	}
	switch {
	case killed:
		s.tc.Logf("container killed by the worker")
	case r.oom:
		s.tc.Logf("container ran out of memory (exit code %d)", st.ExitCode)
	}
	s.state.Finish(r, nil)
}

// waitExit waits for the container to end and returns its state, or nil
// and the last error when the daemon lost it or kept failing for
// daemonGrace. The daemon's wait endpoint can lag (Podman polls), so the
// end of the output stream (which closes when the container's init exits)
// also triggers state polling.
func (s *sandbox) waitExit() (*container.State, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := s.e.cli.ContainerWait(ctx, s.id, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
	// Exactly one value comes on one of w's channels (the result channel
	// is unbuffered): receive it here so the client's goroutine ends, and
	// wait for that before returning (ctx is cancelled then).
	waited := make(chan struct{})
	go func() {
		defer close(waited)
		select {
		case <-w.Result:
		case <-w.Error:
		}
	}()
	defer func() { cancel(); <-waited }()
	select {
	case <-s.outputDone:
	case <-waited:
	}
	var lastErr error
	wch := waited
	errSince := time.Time{}
	for delay := pollMin; ; delay = min(delay*2, pollMax) {
		in, err := s.e.cli.ContainerInspect(ctx, s.id, client.ContainerInspectOptions{})
		if err == nil && in.Container.State != nil {
			if st := in.Container.State; exited(st) {
				return st, nil
			}
			errSince = time.Time{}
		} else {
			lastErr = err
			if cerrdefs.IsNotFound(err) {
				return nil, lastErr
			}
			if errSince.IsZero() {
				errSince = time.Now()
			}
			if time.Since(errSince) > daemonGrace {
				return nil, lastErr
			}
		}
		select {
		case <-wch: // the daemon says it ended: look again now, once
			wch = nil
		case <-time.After(delay):
		}
	}
}

// exited reports whether st is the state of a container whose command
// ended, or that failed to start (created, with an exit code).
func exited(st *container.State) bool {
	if st.Status == container.StateCreated {
		return st.ExitCode != 0
	}
	return !st.Running
}

// Wait implements engines.Sandbox.
func (s *sandbox) Wait(ctx context.Context) (engines.ResultSet, error) {
	return s.state.Wait(ctx)
}

// Kill implements engines.Sandbox: SIGKILL to the container; its files stay
// readable until Dispose. A container that has already exited is not
// reported as killed.
func (s *sandbox) Kill() error { return s.state.Kill(s.kill) }

// kill sends SIGKILL; running is false when the container had already
// stopped or killing it failed.
func (s *sandbox) kill() (running bool, err error) {
	s.closeShells()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err = s.e.cli.ContainerKill(ctx, s.id, client.ContainerKillOptions{Signal: "KILL"})
	switch {
	case err == nil:
		return true, nil
	case cerrdefs.IsNotFound(err) || cerrdefs.IsConflict(err) || notRunning(err):
		return false, nil
	}
	return false, fmt.Errorf("killing container %s: %w", shortID(s.id), err)
}

func notRunning(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "not running") || strings.Contains(msg, "can only kill running") || strings.Contains(msg, "state improper")
}

// Abort implements engines.Sandbox: kills the container and removes it
// and what it used (caches are purged); Wait returns engines.ErrAborted.
func (s *sandbox) Abort() error {
	err := s.state.Abort(func() (bool, error) {
		_, err := s.kill()
		return true, err
	})
	select {
	case <-s.state.Done():
		if !s.state.Aborted() {
			return err // ended: the result stays, Dispose cleans up
		}
	case <-time.After(drainTimeout + daemonGrace):
	}
	return errors.Join(err, s.cleanup(context.Background(), true))
}

// cleanup removes the container, frees (or purges) the caches and the
// image. Runs once. Without purge the container is removed in the
// background (Podman's removal waits for its network teardown, hundreds of
// milliseconds the worker need not wait for; Engine.Close waits for it);
// with purge it is removed first, then the cache volumes.
func (s *sandbox) cleanup(ctx context.Context, purge bool) error {
	s.cleanupOnce.Do(func() {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		defer cancel()
		var errs []error
		if s.id != "" {
			if purge {
				errs = append(errs, s.e.removeContainer(ctx, s.id))
			} else {
				s.e.removeInBackground(s.id)
			}
		}
		for _, use := range s.caches {
			if err := s.e.caches.release(ctx, s.tc, use, purge); err != nil {
				errs = append(errs, err)
			}
		}
		s.mu.Lock()
		dirs := s.spoolDirs
		s.mu.Unlock()
		for _, d := range dirs {
			if err := os.RemoveAll(d); err != nil {
				errs = append(errs, err)
			}
		}
		s.releaseImage()
		s.cleanupErr = errors.Join(errs...)
	})
	return s.cleanupErr
}

// result is a finished container.
type result struct {
	s        *sandbox
	exitCode int
	oom      bool
	killed   bool
	duration time.Duration

	wdOnce sync.Once
	wd     string
	wdErr  error
}

func (r *result) Success() bool           { return r.exitCode == 0 && !r.killed && !r.oom }
func (r *result) ExitCode() int           { return r.exitCode }
func (r *result) Killed() bool            { return r.killed }
func (r *result) OOM() bool               { return r.oom }
func (r *result) Duration() time.Duration { return r.duration }

// Dispose removes the container. Caches are purged when the worker killed
// the task or a plugin stored true under task.PurgeCachesKey.
func (r *result) Dispose() error {
	purge := r.killed
	if v, ok := r.s.tc.Value(task.PurgeCachesKey{}).(bool); ok && v {
		purge = true
	}
	return r.s.cleanup(context.Background(), purge)
}
