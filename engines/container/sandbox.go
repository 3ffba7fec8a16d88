package container

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/task"
)

// builder collects env and caches before the container is created.
type builder struct {
	e            *Engine
	tc           *task.Context
	payload      Payload
	imageID      string
	releaseImage func()

	mu      sync.Mutex
	env     map[string]string
	caches  []cacheRequest
	hosts   []string // extra /etc/hosts entries, "name:ip"
	started bool
	done    bool // Start or Discard called
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
	if name == "" || strings.ContainsAny(name, "=\x00") {
		return fmt.Errorf("%w: %q", engines.ErrInvalidEnvName, name)
	}
	if strings.ContainsRune(value, 0) {
		return fmt.Errorf("%w: value of %s holds NUL", engines.ErrInvalidEnvValue, name)
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

// AttachCache implements VolumeBuilder.
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

// Start creates the container (labels, env, caches, capabilities), attaches
// to its output and starts it.
func (b *builder) Start(ctx context.Context) (engines.Sandbox, error) {
	b.mu.Lock()
	if b.done {
		b.mu.Unlock()
		return nil, errors.New("sandbox builder already started or discarded")
	}
	b.done = true
	env := make([]string, 0, len(b.env))
	for k, v := range b.env {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	reqs := append([]cacheRequest(nil), b.caches...)
	hosts := append([]string(nil), b.hosts...)
	b.mu.Unlock()

	e, tc := b.e, b.tc
	s := &sandbox{
		e: e, tc: tc, releaseImage: b.releaseImage,
		output: discardOutput, done: make(chan struct{}), outputDone: make(chan struct{}),
	}
	if tc.Log != nil {
		s.output = tc.Log
	}
	keep := false
	defer func() {
		if !keep {
			s.cleanup(context.WithoutCancel(ctx), false)
		}
	}()
	for _, r := range reqs {
		use, err := e.caches.acquire(ctx, tc, r.name, r.mountPath)
		if err != nil {
			return nil, err
		}
		s.caches = append(s.caches, use)
	}

	cfg := &container.Config{
		Image:        b.imageID,
		Env:          env,
		Tty:          e.cfg.TTY,
		AttachStdout: true,
		AttachStderr: true,
		Labels:       e.runLabels(tc),
	}
	if len(b.payload.Command) > 0 {
		cfg.Cmd = b.payload.Command
	}
	hc := &container.HostConfig{
		NetworkMode: container.NetworkMode(e.cfg.Network),
		// docker-worker's containers resolved this name (d2g keeps it).
		ExtraHosts: append([]string{"localhost.localdomain:127.0.0.1"}, hosts...),
	}
	hc.Memory = e.cfg.MemoryLimit
	if e.cfg.MemoryLimit > 0 {
		hc.MemorySwap = e.cfg.MemoryLimit // no swap on top of the limit
	}
	pids := e.cfg.PidsLimit
	if pids <= 0 {
		pids = -1
	}
	hc.PidsLimit = &pids
	for _, use := range s.caches {
		hc.Mounts = append(hc.Mounts, mount.Mount{Type: mount.TypeVolume, Source: use.volume, Target: use.mountPath})
	}
	caps := b.payload.Capabilities
	hc.Privileged = caps.Privileged
	if caps.DisableSeccomp {
		hc.SecurityOpt = append(hc.SecurityOpt, "seccomp=unconfined")
	}
	if b.payload.Features.AllowPtrace {
		hc.CapAdd = append(hc.CapAdd, "SYS_PTRACE")
	}
	if caps.Devices.KVM {
		hc.Devices = append(hc.Devices, container.DeviceMapping{PathOnHost: "/dev/kvm", PathInContainer: "/dev/kvm", CgroupPermissions: "rwm"})
	}
	if caps.Devices.LoopbackVideo {
		hc.Devices = append(hc.Devices, container.DeviceMapping{PathOnHost: e.cfg.LoopbackVideoDevice, PathInContainer: e.cfg.LoopbackVideoDevice, CgroupPermissions: "rwm"})
	}
	if caps.Devices.LoopbackAudio {
		hc.Devices = append(hc.Devices, container.DeviceMapping{PathOnHost: e.cfg.LoopbackAudioDevice, PathInContainer: e.cfg.LoopbackAudioDevice, CgroupPermissions: "rwm"})
	}
	if caps.Devices.HostSharedMemory {
		hc.Mounts = append(hc.Mounts, mount.Mount{Type: mount.TypeBind, Source: "/dev/shm", Target: "/dev/shm"})
	}

	cr, err := e.cli.ContainerCreate(ctx, client.ContainerCreateOptions{Config: cfg, HostConfig: hc, Name: containerName(tc)})
	if err != nil {
		return nil, startError("creating container", err)
	}
	s.id = cr.ID
	att, err := e.cli.ContainerAttach(ctx, s.id, client.ContainerAttachOptions{Stream: true, Stdout: true, Stderr: true})
	if err != nil {
		// Podman prepares the container when attaching: a command missing
		// from the image shows up here as a bare 409. Starting it tells why.
		if _, serr := e.cli.ContainerStart(ctx, s.id, client.ContainerStartOptions{}); serr != nil {
			if code, ok := execFailure(serr); ok {
				keep = true
				return s.endedBeforeStart(code, serr), nil
			}
		}
		return nil, startError("attaching to container", err)
	}
	s.attach = att.HijackedResponse
	go s.copyOutput()
	s.started = time.Now()
	if _, err := e.cli.ContainerStart(ctx, s.id, client.ContainerStartOptions{}); err != nil {
		s.attach.Close()
		<-s.outputDone
		if code, ok := execFailure(err); ok {
			keep = true
			return s.endedBeforeStart(code, err), nil
		}
		return nil, startError("starting container", err)
	}
	if e.cfg.MemoryLimit > 0 {
		if in, err := e.cli.ContainerInspect(ctx, s.id, client.ContainerInspectOptions{}); err == nil && in.Container.State != nil {
			s.oom = watchOOM(in.Container.State.Pid, s.id)
		}
	}
	go s.run()
	keep = true
	return s, nil
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

// endedBeforeStart returns the sandbox of a container whose command could
// not be started: a failed result with exit code code.
func (s *sandbox) endedBeforeStart(code int, err error) *sandbox {
	s.tc.Logf("the task's command could not be started: %v", err)
	if s.started.IsZero() {
		s.started = time.Now()
	}
	select {
	case <-s.outputDone:
	default:
		close(s.outputDone)
	}
	s.res = &result{s: s, exitCode: code}
	close(s.done)
	return s
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
	attach       client.HijackedResponse
	output       io.Writer
	caches       []*cacheUse
	releaseImage func()
	started      time.Time
	oom          *oomWatcher // nil unless a memory limit is set and the cgroup is visible

	outputDone chan struct{} // closed when the output stream ended
	done       chan struct{} // closed when the container ended and res/err are set
	res        *result
	err        error

	mu      sync.Mutex // held by Kill across its API call
	killed  bool
	aborted bool
	ended   bool // run saw the container end; Kill is then a no-op

	cleanupOnce sync.Once
	cleanupErr  error
	spoolDirs   []string
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

// run waits for the container to end and records the result. The daemon's
// wait endpoint can lag (Podman polls), so the end of the output stream
// (which closes when the container's init exits) also triggers state
// polling.
func (s *sandbox) run() {
	defer close(s.done)
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
	var st *container.State
	var lastErr error
	wch := waited
	errSince := time.Time{}
	for delay := pollMin; ; delay = min(delay*2, pollMax) {
		in, err := s.e.cli.ContainerInspect(ctx, s.id, client.ContainerInspectOptions{})
		if err == nil && in.Container.State != nil {
			if !in.Container.State.Running && in.Container.State.Status != container.StateCreated || in.Container.State.Status == container.StateCreated && in.Container.State.ExitCode != 0 {
				st = in.Container.State
				break
			}
			errSince = time.Time{}
		} else {
			if cerrdefs.IsNotFound(err) {
				lastErr = err
				break
			}
			if errSince.IsZero() {
				errSince = time.Now()
			}
			lastErr = err
			if time.Since(errSince) > daemonGrace {
				break
			}
		}
		select {
		case <-wch: // the daemon says it ended: look again now, once
			wch = nil
		case <-time.After(delay):
		}
	}
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
		s.err = task.InternalError(fmt.Errorf("waiting for container %s: %w", shortID(s.id), lastErr))
		return
	}
	s.mu.Lock()
	s.ended = true
	killed := s.killed
	s.mu.Unlock()
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
	s.res = r
}

// Wait implements engines.Sandbox.
func (s *sandbox) Wait(ctx context.Context) (engines.ResultSet, error) {
	select {
	case <-s.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	s.mu.Lock()
	aborted := s.aborted
	s.mu.Unlock()
	if aborted {
		return nil, engines.ErrAborted
	}
	if s.err != nil {
		return nil, s.err
	}
	return s.res, nil
}

// Kill implements engines.Sandbox: SIGKILL to the container; its files stay
// readable until Dispose. A container that has already exited is not
// reported as killed.
func (s *sandbox) Kill() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.killed || s.ended {
		return nil
	}
	running, err := s.kill()
	if err != nil {
		return err
	}
	s.killed = running
	return nil
}

// kill sends SIGKILL; running is false when the container had already
// stopped.
func (s *sandbox) kill() (running bool, err error) {
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
	select {
	case <-s.done:
		if s.err == nil {
			return nil // ended: the result stays, Dispose cleans up
		}
	default:
	}
	s.mu.Lock()
	s.aborted = true
	s.killed = true
	s.mu.Unlock()
	_, err := s.kill()
	select {
	case <-s.done:
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
