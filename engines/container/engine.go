package container

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/task"
)

// Labels put on every container and volume the engine creates.
const (
	LabelManaged      = "org.workergen.managed" // always "true"
	LabelWorkerPoolID = "org.workergen.worker-pool-id"
	LabelWorkerGroup  = "org.workergen.worker-group"
	LabelWorkerID     = "org.workergen.worker-id"
	LabelTaskID       = "org.workergen.task-id" // containers: the run's task; caches: the task that created it
	LabelRunID        = "org.workergen.run-id"
	LabelCache        = "org.workergen.cache" // cache volumes: the payload's cache name
)

// Engine runs tasks in containers through the Docker Engine API. It is safe
// for concurrent use.
type Engine struct {
	cfg    Config
	cli    *client.Client
	log    *slog.Logger
	worker task.WorkerInfo
	daemon string // DaemonDocker or DaemonPodman
	images *images
	caches *caches

	bg    sync.WaitGroup // background container removals
	bgSem chan struct{}  // bounds them
}

var (
	_ engines.Engine         = (*Engine)(nil)
	_ engines.SandboxBuilder = (*builder)(nil)
	_ engines.VolumeBuilder  = (*builder)(nil)
	_ engines.Sandbox        = (*sandbox)(nil)
	_ engines.ResultSet      = (*result)(nil)
)

// Option changes how NewEngine builds the engine.
type Option func(*Engine)

// WithImageQueue sets the Queue access indexed-image and task-image
// payloads are downloaded with, in place of each run's tc.Queue.
func WithImageQueue(q task.Queue) Option {
	return func(e *Engine) { e.images.queue = q }
}

// New is the engines.Constructor of the container engine. See NewEngine;
// indexed and task images are downloaded through each run's tc.Queue (the
// deployment's Index and Queue, signed with the run's credentials).
func New(opts engines.Options) (engines.Engine, error) {
	e, err := NewEngine(opts)
	if err != nil {
		return nil, err
	}
	return e, nil
}

// connectTimeout bounds the first contact with the daemon in NewEngine.
const connectTimeout = 30 * time.Second

// NewEngine parses opts.Config (see Config), connects to the daemon (API
// version negotiated; an unreachable daemon is an error naming the socket),
// and removes what a previous process of the same worker left behind:
// its containers, and the caches they had mounted (a task the worker did not
// finish may have left them half-written).
func NewEngine(opts engines.Options, options ...Option) (*Engine, error) {
	cfg, err := ParseConfig(opts.Config)
	if err != nil {
		return nil, err
	}
	cli, err := client.New(client.WithHost(cfg.Socket), client.WithAPIVersionNegotiation(), client.WithUserAgent("workergen/"+opts.Worker.Version))
	if err != nil {
		return nil, fmt.Errorf("engine config: socket %q: %w", cfg.Socket, err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	e := &Engine{cfg: cfg, cli: cli, log: log.With("engine", "container"), worker: opts.Worker, bgSem: make(chan struct{}, 4)}
	e.images = newImages(cli, cfg)
	e.caches = newCaches(cli, e.baseLabels())
	for _, o := range options {
		o(e)
	}
	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	defer cancel()
	v, err := cli.ServerVersion(ctx, client.ServerVersionOptions{})
	if err != nil {
		cli.Close()
		return nil, unreachable(cfg.Socket, err)
	}
	e.log.Info("connected to container daemon", "socket", cfg.Socket, "daemon", daemonKind(v)+" "+v.Version, "api", cli.ClientVersion())
	e.daemon = daemonKind(v)
	if err := checkDaemon(cfg, e.daemon, v.Version); err != nil {
		cli.Close()
		return nil, err
	}
	if err := e.ensureNetwork(ctx); err != nil {
		cli.Close()
		return nil, err
	}
	if err := e.removeLeftovers(ctx); err != nil {
		cli.Close()
		return nil, err
	}
	return e, nil
}

// unreachable is the error for a daemon that does not answer on socket:
// it names the socket tried and the config key that sets another, and
// wraps engines.ErrHostUnavailable.
func unreachable(socket string, err error) error {
	return fmt.Errorf("%w: engine.socket %q: no container daemon answers there (%w); start the daemon, or set engine.socket in the worker config (--config FILE) to its API socket, e.g. unix:///var/run/docker.sock for Docker, unix:///run/podman/podman.sock for Podman", engines.ErrHostUnavailable, socket, err)
}

// Daemon returns the kind of daemon the engine talks to: DaemonDocker or
// DaemonPodman.
func (e *Engine) Daemon() string { return e.daemon }

// Client returns the engine's Docker Engine API client (for tests and
// tools).
func (e *Engine) Client() *client.Client { return e.cli }

// Close waits for background container removals (at most closeTimeout)
// and releases the daemon connection.
func (e *Engine) Close() error {
	done := make(chan struct{})
	go func() { e.bg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(closeTimeout):
		e.log.Warn("container removals still running at close; the next start-up removes what is left")
	}
	return e.cli.Close()
}

const closeTimeout = 5 * time.Minute

// WaitRemovals waits for the containers being removed in the background
// (after Dispose) to be gone.
func (e *Engine) WaitRemovals() { e.bg.Wait() }

// removeContainer removes container id and its anonymous volumes.
func (e *Engine) removeContainer(ctx context.Context, id string) error {
	if _, err := e.cli.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("removing container %s: %w", shortID(id), err)
	}
	return nil
}

// removeInBackground removes container id without making the caller wait.
func (e *Engine) removeInBackground(id string) {
	e.bg.Add(1)
	go func() {
		defer e.bg.Done()
		e.bgSem <- struct{}{}
		defer func() { <-e.bgSem }()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if err := e.removeContainer(ctx, id); err != nil {
			e.log.Warn("removing finished container", "container", shortID(id), "err", err)
		}
	}()
}

// baseLabels identify the worker.
func (e *Engine) baseLabels() map[string]string {
	return map[string]string{
		LabelManaged:      "true",
		LabelWorkerPoolID: e.worker.WorkerPoolID,
		LabelWorkerGroup:  e.worker.WorkerGroup,
		LabelWorkerID:     e.worker.WorkerID,
	}
}

func (e *Engine) runLabels(tc *task.Context) map[string]string {
	l := e.baseLabels()
	l[LabelTaskID] = tc.TaskID
	l[LabelRunID] = strconv.Itoa(tc.RunID)
	return l
}

// workerFilter selects the objects of this worker.
func (e *Engine) workerFilter() client.Filters {
	f := client.Filters{}
	for k, v := range e.baseLabels() {
		f.Add("label", k+"="+v)
	}
	return f
}

// removeLeftovers removes the containers of this worker (same pool, group
// and id) that a previous process left, and purges the caches they mounted.
func (e *Engine) removeLeftovers(ctx context.Context) error {
	list, err := e.cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: e.workerFilter()})
	if err != nil {
		return fmt.Errorf("listing leftover containers: %w", err)
	}
	var errs []error
	for _, c := range list.Items {
		in, err := e.cli.ContainerInspect(ctx, c.ID, client.ContainerInspectOptions{})
		if err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("inspecting leftover container %s: %w", shortID(c.ID), err))
			continue
		}
		if _, err := e.cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("removing leftover container %s: %w", shortID(c.ID), err))
			continue
		}
		e.log.Warn("removed leftover container", "container", shortID(c.ID), "taskId", c.Labels[LabelTaskID], "runId", c.Labels[LabelRunID])
		for _, m := range in.Container.Mounts {
			if m.Type != "volume" || m.Name == "" {
				continue
			}
			v, err := e.cli.VolumeInspect(ctx, m.Name, client.VolumeInspectOptions{})
			if err != nil || v.Volume.Labels[LabelCache] == "" || v.Volume.Labels[LabelManaged] != "true" {
				continue
			}
			if _, err := e.cli.VolumeRemove(ctx, m.Name, client.VolumeRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("purging cache volume %s of leftover container: %w", m.Name, err))
				continue
			}
			e.log.Warn("purged cache used by leftover container", "cache", v.Volume.Labels[LabelCache], "volume", m.Name)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("removing leftovers of a previous run: %w", err)
	}
	return nil
}

// NewSandboxBuilder decodes the engine's payload fields (see Payload),
// checks them against the config and the task's scopes, and makes the image
// present (pulling or loading it). Errors are *task.ExceptionError for
// payload and transient problems.
func (e *Engine) NewSandboxBuilder(ctx context.Context, tc *task.Context) (engines.SandboxBuilder, error) {
	p, err := decodePayload(ctx, tc.Definition.Payload, e.cfg, tc)
	if err != nil {
		return nil, err
	}
	id, ref, art, err := e.images.resolve(ctx, tc, p.Image)
	if err != nil {
		return nil, err
	}
	if len(p.Command) == 0 {
		im, err := e.cli.ImageInspect(ctx, id)
		if err != nil {
			return nil, task.ResourceUnavailable(fmt.Errorf("inspecting image %s: %w", shortID(id), err))
		}
		if im.Config == nil || len(im.Config.Cmd) == 0 && len(im.Config.Entrypoint) == 0 {
			return nil, task.MalformedPayloadf("payload.command: empty, and image %s has no default command (CMD or ENTRYPOINT)", p.Image)
		}
	}
	b := &builder{e: e, tc: tc, payload: p, imageID: id, imageArtifact: art, env: map[string]string{}}
	b.releaseImage = e.images.acquire(ref)
	for _, name := range sortedKeys(p.Cache) {
		if err := b.AttachCache(name, p.Cache[name]); err != nil {
			b.releaseImage()
			return nil, task.MalformedPayloadf("payload.cache[%q]: %v", name, err)
		}
	}
	return b, nil
}

// discardOutput is where output goes for a run without a task log.
var discardOutput io.Writer = io.Discard
