// Package demo runs a built worker binary against the embedded Queue
// (taskcluster/localqueue) loaded with task definitions from a folder, and
// reports each task's resolution with the paths of its downloaded log and
// artifacts. It backs `go tool mage demo`, the README's first command: the
// whole Taskcluster round trip (createTask, claimWork, reclaimTask, artifact
// uploads, resolution) on one machine with no deployment and no
// credentials to set up.
package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/workergen/workergen/internal/progress"
	"github.com/workergen/workergen/taskcluster"
	"github.com/workergen/workergen/taskcluster/localqueue"
	"github.com/workergen/workergen/taskcluster/tcwire"
	"github.com/workergen/workergen/worker"
)

// Options configure Run.
type Options struct {
	// Binary is the worker binary to run (built for this machine).
	Binary string
	// Tasks are task definition files (JSON or YAML, see
	// worker.ParseTaskFile), e.g. examples/*.yml.
	Tasks []string
	// Dir receives the Queue's state (queue/), the worker's config and task
	// directories, and the downloaded logs and artifacts
	// (results/<taskId>/<artifact name>). It is emptied first.
	Dir string
	// Capacity is the worker's capacity (default 2).
	Capacity int
	// Engine, when set, is the worker config's `engine` section (e.g.
	// {"socket": "unix:///run/workergen-docker.sock"} for a container
	// profile).
	Engine map[string]any
	// Stdout receives the table; Stderr the worker's and the Queue's own
	// logs (nil: the file <Dir>/worker.log).
	Stdout, Stderr io.Writer
	// Progress, when set, prints a line as each stage starts and ends
	// (tasks created, the worker's run, the downloads) with its duration.
	Progress *progress.Printer
}

// Result is one task's outcome.
type Result struct {
	File       string
	TaskID     string
	Name       string
	Resolution string            // completed, failed, exception/<reason>, or the state if unresolved
	Log        string            // downloaded backing log, "" if none
	Artifacts  map[string]string // artifact name -> downloaded path (or "error: ..." for error artifacts)
}

const (
	pool        = "workergen-demo/local"
	clientID    = "demo-worker"
	accessToken = "demo-worker-access-token-not-secret"
)

// Run starts the embedded Queue on a loopback port, creates one task per
// file, runs the worker until it has resolved them all, downloads every
// artifact through the Queue's getArtifact (as a Taskcluster user would),
// prints a table and returns the results. The error is for set-up problems;
// tasks that fail are results.
func Run(ctx context.Context, o Options) ([]Result, error) {
	if o.Capacity <= 0 {
		o.Capacity = 2
	}
	if o.Stdout == nil {
		o.Stdout = io.Discard
	}
	dir, err := freshDir(o.Dir)
	if err != nil {
		return nil, err
	}
	if o.Stderr == nil {
		f, err := os.Create(filepath.Join(dir, "worker.log"))
		if err != nil {
			return nil, err
		}
		defer f.Close()
		o.Stderr = f
	}

	qctx, stopQueue := context.WithCancel(ctx)
	defer stopQueue()
	q, err := startQueue(qctx, dir, o.Stderr)
	if err != nil {
		return nil, err
	}
	step := o.Progress.Start("", fmt.Sprintf("create %d tasks in the embedded Queue at %s", len(o.Tasks), q.rootURL), "")
	results, err := CreateTasks(ctx, q.server, o.Tasks, pool)
	if step.End(err, "") != nil {
		return nil, err
	}
	step = o.Progress.Start("", fmt.Sprintf("run the worker (capacity %d) until it has resolved them", o.Capacity), "log: "+filepath.Join(dir, "worker.log"))
	if err := step.End(runWorker(ctx, o, dir, q.rootURL, len(results)), ""); err != nil {
		return nil, err
	}
	step = o.Progress.Start("", "download each task's artifacts through getArtifact", "")
	if err := step.End(collect(ctx, q, results, dir), ""); err != nil {
		return nil, err
	}
	printTable(o.Stdout, results, dir)
	stopQueue()
	if err := <-q.done; err != nil && !errors.Is(err, context.Canceled) {
		return results, err
	}
	return results, nil
}

// freshDir makes dir absolute, empty and present.
func freshDir(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	return dir, os.MkdirAll(dir, 0o755)
}

// runningQueue is the embedded Queue the demo started; done receives
// ListenAndServe's result once ctx ends.
type runningQueue struct {
	server  *localqueue.Server
	rootURL string
	done    chan error
}

// startQueue starts the embedded Queue on a loopback port with its state in
// dir/queue and the demo worker's client, and waits until it listens.
func startQueue(ctx context.Context, dir string, logTo io.Writer) (*runningQueue, error) {
	q := &runningQueue{done: make(chan error, 1)}
	ready := make(chan struct{})
	go func() {
		q.done <- localqueue.ListenAndServe(ctx, "127.0.0.1:0", localqueue.Options{
			Dir:      filepath.Join(dir, "queue"),
			LongPoll: 2 * time.Second,
			Clients: []localqueue.Client{{ClientID: clientID, AccessToken: accessToken,
				Scopes: []string{"queue:claim-work:" + pool, "queue:worker-id:demo/*", "queue:get-artifact:*"}}},
			Logger: slog.New(slog.NewTextHandler(logTo, &slog.HandlerOptions{Level: slog.LevelWarn})),
		}, func(s *localqueue.Server, base string) {
			q.server, q.rootURL = s, base
			close(ready)
		})
	}()
	select {
	case <-ready:
		return q, nil
	case err := <-q.done:
		return nil, fmt.Errorf("starting the embedded Queue: %w", err)
	}
}

// runWorker writes a worker config for rootURL into dir and runs the worker
// binary in `work` mode until it has run tasks tasks.
func runWorker(ctx context.Context, o Options, dir, rootURL string, tasks int) error {
	cfg := map[string]any{
		"rootUrl":            rootURL,
		"credentials":        map[string]string{"clientId": clientID, "accessToken": accessToken},
		"workerPoolId":       pool,
		"workerGroup":        "demo",
		"workerId":           "demo-1",
		"capacity":           o.Capacity,
		"stateDir":           dir,
		"tasksDir":           filepath.Join(dir, "tasks"),
		"numberOfTasksToRun": tasks,
	}
	if o.Engine != nil {
		cfg["engine"] = o.Engine
	}
	cfgPath := filepath.Join(dir, "worker-config.json")
	data, _ := json.MarshalIndent(cfg, "", "  ")
	if err := os.WriteFile(cfgPath, data, 0o644); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, o.Binary, "work", "--config", cfgPath)
	cmd.Stdout, cmd.Stderr = o.Stderr, o.Stderr
	cmd.Env = filteredEnv()
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("worker %s: %w", o.Binary, err)
	}
	return nil
}

// collect fills in each result's resolution from the Queue and downloads
// the artifacts of its last run into dir/results/<taskId>.
func collect(ctx context.Context, q *runningQueue, results []Result, dir string) error {
	client := &taskcluster.Client{RootURL: q.rootURL,
		Credentials: taskcluster.StaticCredentials(taskcluster.Credentials{ClientID: clientID, AccessToken: accessToken})}
	for i := range results {
		r := &results[i]
		st, err := q.server.Status(r.TaskID)
		if err != nil {
			return err
		}
		r.Resolution = st.State
		if n := len(st.Runs); n > 0 {
			run := st.Runs[n-1]
			r.Resolution = run.State
			if run.State == tcwire.StateException {
				r.Resolution += "/" + run.ReasonResolved
			}
			if err := download(ctx, client, q.server, r, n-1, filepath.Join(dir, "results", r.TaskID)); err != nil {
				return err
			}
		}
	}
	return nil
}

// CreateTasks creates one task in the embedded Queue s per task file (see
// worker.ParseTaskFile), in taskQueueId, and returns them in file order.
// Each file's taskQueueId (or provisionerId/workerType) is replaced.
func CreateTasks(ctx context.Context, s *localqueue.Server, files []string, taskQueueID string) ([]Result, error) {
	var results []Result
	now := time.Now()
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		def, err := worker.ParseTaskFile(data, now)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		id := worker.NewSlugID()
		def.TaskQueueID, def.ProvisionerID, def.WorkerType = taskQueueID, "", ""
		if def.TaskGroupID == "" {
			def.TaskGroupID = id
		}
		if def.SchedulerID == "" {
			def.SchedulerID = "-"
		}
		if _, err := s.CreateTask(ctx, id, &def); err != nil {
			return nil, fmt.Errorf("creating task from %s: %w", f, err)
		}
		results = append(results, Result{File: f, TaskID: id, Name: def.Metadata.Name})
	}
	return results, nil
}

// filteredEnv is the environment for the worker process without the
// caller's Taskcluster credentials (the demo config has its own).
func filteredEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "TASKCLUSTER_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

func download(ctx context.Context, c *taskcluster.Client, s *localqueue.Server, r *Result, runID int, dst string) error {
	arts, err := s.Artifacts(r.TaskID, runID)
	if err != nil {
		return err
	}
	r.Artifacts = map[string]string{}
	for _, a := range arts {
		switch a.StorageType {
		case "error":
			r.Artifacts[a.Name] = "error: " + a.Reason + ": " + a.Message
			continue
		case "reference":
			r.Artifacts[a.Name] = "reference: " + a.URL
			continue
		case "link":
			r.Artifacts[a.Name] = "link to " + a.Link
			continue
		}
		u, err := c.Queue().ArtifactURL(r.TaskID, runID, a.Name, time.Hour)
		if err != nil {
			return err
		}
		path := filepath.Join(dst, filepath.FromSlash(a.Name))
		if err := fetch(ctx, u.String(), path); err != nil {
			return fmt.Errorf("downloading %s of task %s: %w", a.Name, r.TaskID, err)
		}
		r.Artifacts[a.Name] = path
		if strings.HasSuffix(a.Name, "/live_backing.log") {
			r.Log = path
		}
	}
	return nil
}

// fetch downloads url (following the Queue's redirect; Go's transport
// undoes a gzip Content-Encoding) to path.
func fetch(ctx context.Context, url, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, resp.Body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func printTable(w io.Writer, results []Result, dir string) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TASK FILE\tTASK ID\tRESOLUTION\tLOG")
	cwd, _ := os.Getwd()
	rel := func(p string) string {
		if r, err := filepath.Rel(cwd, p); err == nil && p != "" && !strings.HasPrefix(r, "..") {
			return r
		}
		return p
	}
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", filepath.Base(r.File), r.TaskID, r.Resolution, rel(r.Log))
	}
	_ = tw.Flush()
	fmt.Fprintln(w)
	for _, r := range results {
		var names []string
		for n := range r.Artifacts {
			if !strings.HasPrefix(n, "public/logs/") {
				names = append(names, n)
			}
		}
		if len(names) == 0 {
			continue
		}
		sort.Strings(names)
		fmt.Fprintf(w, "%s artifacts:\n", filepath.Base(r.File))
		for _, n := range names {
			p := r.Artifacts[n]
			if filepath.IsAbs(p) {
				p = rel(p)
			}
			fmt.Fprintf(w, "  %-36s %s\n", n, p)
		}
	}
	fmt.Fprintf(w, "\nEverything is under %s: Queue state (queue/), worker config and log, downloaded logs and artifacts (results/).\n", rel(dir))
}

// ContainerDaemon finds a container daemon for the docker-worker examples:
// Docker (profile linux-docker) on WORKERGEN_DOCKER_SOCKET, the socket
// .ci/docker-setup.sh writes to /run/workergen-docker.env, or Docker's
// standard unix:///var/run/docker.sock; else Podman (linux-podman) on
// WORKERGEN_PODMAN_SOCKET or /run/workergen-podman.env's. Only unix sockets
// that exist count; "" when there is none.
func ContainerDaemon() (profile, socket string) {
	for _, c := range []struct{ profile, env, file, std string }{
		{"linux-docker", "WORKERGEN_DOCKER_SOCKET", "/run/workergen-docker.env", "unix:///var/run/docker.sock"},
		{"linux-podman", "WORKERGEN_PODMAN_SOCKET", "/run/workergen-podman.env", "unix:///run/podman/podman.sock"},
	} {
		for _, s := range []string{os.Getenv(c.env), envFileValue(c.file, c.env), c.std} {
			if p, ok := strings.CutPrefix(s, "unix://"); ok {
				if _, err := os.Stat(p); err == nil {
					return c.profile, s
				}
			}
		}
	}
	return "", ""
}

// envFileValue reads key from a file of KEY=VALUE lines ("" if absent).
func envFileValue(path, key string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && k == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
