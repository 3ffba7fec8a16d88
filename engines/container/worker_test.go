package container_test

// Integration: the linux-podman worker (profile resolved by the generator,
// engine and plugins wired as the generated main does) claims tasks from
// the embedded Queue over HTTP and runs them against Podman.

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/workergen/workergen/engines/container"
	"github.com/workergen/workergen/engines/container/daemontest"
	"github.com/workergen/workergen/gen"
	"github.com/workergen/workergen/plugins"
	"github.com/workergen/workergen/plugins/artifacts"
	"github.com/workergen/workergen/plugins/chainoftrust"
	"github.com/workergen/workergen/plugins/env"
	"github.com/workergen/workergen/plugins/exitstatus"
	"github.com/workergen/workergen/plugins/interactive"
	"github.com/workergen/workergen/plugins/maxruntime"
	"github.com/workergen/workergen/plugins/taskclusterproxy"
	"github.com/workergen/workergen/plugins/tasklog"
	"github.com/workergen/workergen/task"
	"github.com/workergen/workergen/taskcluster"
	"github.com/workergen/workergen/taskcluster/localqueue"
	"github.com/workergen/workergen/worker"
)

const itPool = "workergen-test/linux-podman"

// itSeq tells apart the workers of one test process (each its own worker
// id, so one's start-up never removes another's containers).
var itSeq atomic.Int64

func repoRoot(t testing.TB) string {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found")
		}
		dir = parent
	}
}

func podmanEnv(t testing.TB, name string) string { return daemontest.Env(name) }

type itEnv struct {
	t      testing.TB
	server *localqueue.Server
	url    string
	client *taskcluster.Client
	runner *worker.Runner
	cfg    *worker.Config
	image  string
}

func newItEnv(t testing.TB) *itEnv {
	return newItEnvWith(t, map[string]any{"pullPolicy": "always", "memoryLimit": 64 << 20})
}

// newItEnvWith is newItEnv with engine config ec (the socket is added), on
// Podman.
func newItEnvWith(t testing.TB, ec map[string]any) *itEnv {
	return newItEnvOn(t, daemontest.ByName("podman"), ec)
}

// newItEnvOn is newItEnvWith on daemon d, with d's profile. Unless ec names
// a network, the worker's containers run on a network of the test's own
// (daemontest.Network), so the taskcluster proxy listens on its gateway,
// never on the default bridge's that another worker may hold.
func newItEnvOn(t testing.TB, d daemontest.Daemon, ec map[string]any) *itEnv {
	daemontest.Require(t, d)
	sock := d.Socket
	image := daemontest.Env("WORKERGEN_TEST_IMAGE")
	if image == "" {
		image = "localhost:5000/workergen/busybox:latest"
	}
	if _, ok := ec["network"]; !ok {
		ec["network"] = daemontest.Network(t, d)
	}
	workerID := fmt.Sprintf("it-%d-%d", os.Getpid(), itSeq.Add(1))
	removeCachesAtEnd(t, d, workerID)
	s, err := localqueue.New(localqueue.Options{
		Dir: t.TempDir(), ClaimTimeout: time.Minute, LongPoll: 300 * time.Millisecond, NoSync: true,
		Clients: []localqueue.Client{{ClientID: "worker", AccessToken: "worker-token",
			Scopes: []string{"queue:claim-work:" + itPool, "queue:worker-id:*", "auth:expand-scopes"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		(&taskcluster.Client{}).CloseIdleConnections() // the shared transport's keep-alive connections
		srv.Close()
		s.Close()
	})

	p, err := gen.Resolve(repoRoot(t), d.Profile)
	if err != nil {
		t.Fatal(err)
	}
	ctors := map[string]plugins.Constructor{"env": env.New, "maxruntime": maxruntime.New, "exitstatus": exitstatus.New, "tasklog": tasklog.New, "artifacts": artifacts.New, "taskclusterproxy": taskclusterproxy.New,
		"chainoftrust": chainoftrust.New, "interactive": interactive.New}
	b := worker.Build{Profile: p.Name, Binary: p.Binary, Dialect: task.Dialect(p.Dialect), Engine: worker.EngineEntry{Name: "container", New: container.New}, PayloadSchema: p.PayloadSchema, ConfigSchema: p.ConfigSchema, DefaultConfig: p.DefaultConfig, ProfileJSON: p.ProfileJSON}
	for _, pl := range p.Plugins {
		c, ok := ctors[pl.Name]
		if !ok {
			t.Fatalf("profile links plugin %s the test does not know", pl.Name)
		}
		b.Plugins = append(b.Plugins, worker.PluginEntry{Name: pl.Name, New: c})
	}
	for _, u := range p.Unsupported {
		b.Unsupported = append(b.Unsupported, worker.Unsupported{Path: u.Path, Feature: u.Feature})
	}
	ec["socket"] = sock
	engineCfg, _ := json.Marshal(ec)
	// The plugins' sections are the profile's defaults, as LoadConfig gives
	// the built worker.
	var defaults struct {
		Plugins map[string]json.RawMessage `json:"plugins"`
	}
	if err := json.Unmarshal(p.DefaultConfig, &defaults); err != nil {
		t.Fatal(err)
	}
	cfg := &worker.Config{RootURL: srv.URL, WorkerPoolID: itPool, WorkerGroup: "it", WorkerID: workerID,
		Capacity: 1, TasksDir: t.TempDir(), MaxTaskRunTime: 3600, ReclaimMargin: 30, ArtifactUpload: "s3", UploadConcurrency: 2,
		Engine: engineCfg, Plugins: defaults.Plugins}
	r, err := worker.NewRunner(b, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return &itEnv{t: t, server: s, url: srv.URL, runner: r, cfg: cfg, image: image,
		client: &taskcluster.Client{RootURL: srv.URL, Credentials: taskcluster.StaticCredentials(taskcluster.Credentials{ClientID: "worker", AccessToken: "worker-token"}),
			InitialInterval: 20 * time.Millisecond, MaxInterval: 200 * time.Millisecond}}
}

// removeCachesAtEnd removes the cache volumes of worker workerID from d at
// the end of t, after the worker's own clean-up (registered later).
func removeCachesAtEnd(t testing.TB, d daemontest.Daemon, workerID string) {
	cli := daemontest.Client(t, d)
	t.Cleanup(func() {
		ctx := context.Background()
		f := client.Filters{}
		f.Add("label", container.LabelWorkerID+"="+workerID)
		f.Add("label", container.LabelCache)
		list, err := cli.VolumeList(ctx, client.VolumeListOptions{Filters: f})
		if err != nil {
			t.Errorf("listing cache volumes: %v", err)
			return
		}
		for _, v := range list.Items {
			if _, err := cli.VolumeRemove(ctx, v.Name, client.VolumeRemoveOptions{Force: true}); err != nil {
				t.Errorf("removing cache volume %s: %v", v.Name, err)
			}
		}
	})
}

func (e *itEnv) createTask(payload map[string]any, scopes ...string) string {
	e.t.Helper()
	id := worker.NewSlugID()
	now := time.Now().UTC()
	if scopes == nil {
		scopes = []string{}
	}
	def := map[string]any{
		"taskQueueId": itPool, "schedulerId": "tests", "taskGroupId": id, "scopes": scopes,
		"created": now.Format(time.RFC3339Nano), "deadline": now.Add(time.Hour).Format(time.RFC3339Nano),
		"expires":  now.Add(48 * time.Hour).Format(time.RFC3339Nano),
		"payload":  payload,
		"metadata": map[string]string{"name": "it", "description": "d", "owner": "o@example.com", "source": "https://example.com"},
	}
	if _, err := e.server.CreateTaskJSON(context.Background(), id, def); err != nil {
		e.t.Fatal(err)
	}
	return id
}

// work runs the worker until it has run n tasks.
func (e *itEnv) work(n int) {
	e.t.Helper()
	cfg := *e.cfg
	cfg.NumberOfTasksToRun = n
	w := &worker.Worker{Runner: e.runner, Config: &cfg, Client: e.client, ClaimPollInterval: 50 * time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := w.Work(ctx); err != nil {
		e.t.Fatal(err)
	}
}

func (e *itEnv) resolution(id string) string {
	st, err := e.server.Status(id)
	if err != nil || len(st.Runs) == 0 {
		return fmt.Sprintf("<no run: %v>", err)
	}
	r := st.Runs[len(st.Runs)-1]
	if r.State == "exception" {
		return r.State + "/" + r.ReasonResolved
	}
	return r.State
}

func (e *itEnv) log(id string) string {
	p, err := e.server.ArtifactPath(id, 0, "public/logs/live_backing.log")
	if err != nil {
		return fmt.Sprintf("<no log: %v>", err)
	}
	b, _ := os.ReadFile(p)
	if zr, err := gzip.NewReader(bytes.NewReader(b)); err == nil {
		if u, err := io.ReadAll(zr); err == nil {
			return string(u)
		}
	}
	return string(b)
}

func (e *itEnv) expect(id, resolution string, logHas ...string) {
	e.t.Helper()
	got := e.resolution(id)
	log := e.log(id)
	if got != resolution {
		e.t.Errorf("task %s resolved %s, want %s; log:\n%s", id, got, resolution, log)
		return
	}
	for _, s := range logHas {
		if !strings.Contains(log, s) {
			e.t.Errorf("task %s: log lacks %q:\n%s", id, s, log)
		}
	}
}

func (e *itEnv) payload(script string) map[string]any {
	return map[string]any{"image": e.image, "maxRunTime": 120, "command": []string{"sh", "-c", script}}
}

// TestWorkerLinuxPodman runs docker-worker tasks through the worker on
// each daemon (the name is historical).
func TestWorkerLinuxPodman(t *testing.T) {
	daemontest.ForEach(t, func(t *testing.T, d daemontest.Daemon) {
		workerTasks(t, newItEnvOn(t, d, map[string]any{"pullPolicy": "always", "memoryLimit": 64 << 20}))
	})
}

func workerTasks(t *testing.T, e *itEnv) {
	cacheScope := "docker-worker:cache:it-*"

	// Batch 1: pull, env, malformed, OOM, maxRunTime kill, privileged.
	pulled := e.payload(`echo "greeting=$GREETING task=$TASK_ID"`)
	pulled["env"] = map[string]string{"GREETING": "hello from the queue"}
	tPull := e.createTask(pulled)
	tFail := e.createTask(e.payload("exit 3"))
	tOOM := e.createTask(e.payload("head -c 536870912 /dev/zero | tail > /dev/null"))
	slow := e.payload("echo sleeping; sleep 600")
	slow["maxRunTime"] = 3
	tKill := e.createTask(slow)
	priv := e.payload("true")
	priv["capabilities"] = map[string]any{"privileged": true}
	tPriv := e.createTask(priv)
	unsupported := e.payload("true")
	unsupported["features"] = map[string]any{"interactive": true}
	tUnsupported := e.createTask(unsupported)
	e.work(6)
	e.expect(tPull, "completed", "greeting=hello from the queue task="+tPull, "pulled in")
	e.expect(tFail, "failed", "exit code: 3")
	e.expect(tOOM, "failed", "ran out of memory")
	e.expect(tKill, "failed", "sleeping", "killed")
	e.expect(tPriv, "exception/malformed-payload", "payload.capabilities.privileged")
	e.expect(tUnsupported, "exception/malformed-payload", "features.interactive")

	// Batch 2: a cache written, reused, purged by an exit code.
	write := e.payload("echo cached-data > /c/f")
	write["cache"] = map[string]string{"it-cache": "/c"}
	tWrite := e.createTask(write, cacheScope)
	e.work(1)
	read := e.payload("cat /c/f 2>/dev/null || echo cache-empty; exit 7")
	read["cache"] = map[string]string{"it-cache": "/c"}
	read["onExitStatus"] = map[string]any{"purgeCaches": []int{7}}
	tRead := e.createTask(read, cacheScope)
	e.work(1)
	tAfter := e.createTask(read, cacheScope)
	e.work(1)
	e.expect(tWrite, "completed")
	e.expect(tRead, "failed", "cached-data", "purged")
	e.expect(tAfter, "failed", "cache-empty")
	noScope := e.createTask(write)
	e.work(1)
	e.expect(noScope, "exception/malformed-payload", "docker-worker:cache:it-cache")
}

// TestWorkerCacheThroughRole: a task whose only scope is an assume: scope
// (as hook and decision tasks get theirs) is given a docker-worker cache
// through a role created in the embedded Queue, as docker-worker v99.2.1
// (task.js: auth.expandScopes with the worker's credentials before
// buildVolumeBindings) and generic-worker v106 (scopes.Given.Satisfies)
// do; a task assuming a role without the scope is still refused.
func TestWorkerCacheThroughRole(t *testing.T) {
	e := newItEnv(t)
	if err := e.server.CreateRole("repo:hg.mozilla.org/projects/*", "projects' branches", []string{"docker-worker:cache:it-role-<..>"}); err != nil {
		t.Fatal(err)
	}
	write := e.payload("echo via-role > /c/f")
	write["cache"] = map[string]string{"it-role-nss:branch:default": "/c"}
	tWrite := e.createTask(write, "assume:repo:hg.mozilla.org/projects/nss:branch:default")
	read := e.payload("cat /c/f")
	read["cache"] = map[string]string{"it-role-nss:branch:default": "/c"}
	tRead := e.createTask(read, "assume:repo:hg.mozilla.org/projects/nss:branch:default")
	tOther := e.createTask(write, "assume:repo:hg.mozilla.org/projects/other")
	e.work(3)
	e.expect(tWrite, "completed")
	e.expect(tRead, "completed", "via-role")
	e.expect(tOther, "exception/malformed-payload", "docker-worker:cache:it-role-nss:branch:default")
}

// TestWorkerTaskImageFromQueue loads a task image published as an artifact
// of another task in the embedded Queue.
// On each daemon: an image saved by that daemon, loaded and tagged by the
// engine.
func TestWorkerTaskImageFromQueue(t *testing.T) {
	daemontest.ForEach(t, taskImageFromQueue)
}

func taskImageFromQueue(t *testing.T, d daemontest.Daemon) {
	e := newItEnvOn(t, d, map[string]any{"pullPolicy": "always", "memoryLimit": 64 << 20})
	ctx := context.Background()
	cli, err := client.New(client.WithHost(d.Socket), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() }) // after the image clean-up below
	rc, err := cli.ImageSave(ctx, []string{e.image})
	if err != nil {
		t.Fatal(err)
	}
	image, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}

	// The producer task, run "by hand": claim, upload, complete.
	producer := e.createTask(map[string]any{"image": e.image, "maxRunTime": 60})
	claimed, err := e.server.ClaimWork(ctx, itPool, "producer", "p1", 1)
	if err != nil || len(claimed) != 1 || claimed[0].Status.TaskID != producer {
		t.Fatalf("claiming the producer: %v %v", claimed, err)
	}
	pc := &taskcluster.Client{RootURL: e.url, Credentials: taskcluster.StaticCredentials(claimed[0].Credentials)}
	q := pc.Queue()
	err = q.UploadArtifact(ctx, producer, 0, "public/image.tar", &taskcluster.ArtifactUpload{
		StorageType: taskcluster.StorageS3, ContentType: "application/x-tar", ContentLength: int64(len(image)),
		Expires: time.Now().Add(24 * time.Hour),
		Open:    func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(image)), nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.ReportCompleted(ctx, producer, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		st, _ := cli.ImageList(ctx, client.ImageListOptions{})
		for _, im := range st.Items {
			for _, tag := range im.RepoTags {
				if strings.Contains(tag, "workergen-task-image") {
					cli.ImageRemove(ctx, tag, client.ImageRemoveOptions{})
				}
			}
		}
	})

	consumer := map[string]any{"image": map[string]string{"type": "task-image", "taskId": producer, "path": "public/image.tar"},
		"maxRunTime": 60, "command": []string{"sh", "-c", "echo running in the task image"}}
	tImg := e.createTask(consumer)
	missing := map[string]any{"image": map[string]string{"type": "task-image", "taskId": producer, "path": "public/missing.tar"}, "maxRunTime": 60}
	tMissing := e.createTask(missing)
	e.work(2)
	e.expect(tImg, "completed", "running in the task image", "loaded")
	e.expect(tMissing, "exception/malformed-payload", "public/missing.tar")
}

// BenchmarkWorkerTrueOverhead runs `true` in the test image through the
// linux-podman worker's runner (run mode: payload schema, plugins, task
// log, artifacts directory, the engine) and with `podman run --rm`,
// interleaved, and reports both medians and the worker's overhead over
// podman's floor. The worker removes the container in the background;
// worker-removed-ms also waits for that removal before podman runs.
//
//	go test -run '^$' -bench WorkerTrueOverhead -benchtime 30x ./engines/container
func BenchmarkWorkerTrueOverhead(b *testing.B) {
	e := newItEnvWith(b, map[string]any{})
	podman, err := exec.LookPath("podman")
	if err != nil {
		b.Skip("podman CLI not found")
	}
	now := time.Now().UTC()
	raw, _ := json.Marshal(map[string]any{
		"taskQueueId": itPool, "created": now.Format(time.RFC3339), "deadline": now.Add(time.Hour).Format(time.RFC3339),
		"payload":  map[string]any{"image": e.image, "maxRunTime": 60, "command": []string{"true"}},
		"metadata": map[string]string{"name": "true", "description": "d", "owner": "o@example.com", "source": "https://example.com"},
	})
	td, err := worker.ParseTaskFile(raw, now)
	if err != nil {
		b.Fatal(err)
	}
	runOnce := func() {
		res, err := worker.RunLocal(context.Background(), e.runner, worker.LocalRun{TaskID: worker.NewSlugID(), Definition: td, OutputDir: b.TempDir()})
		if err != nil {
			b.Fatal(err)
		}
		if res.Outcome.Resolution.String() != "completed" {
			b.Fatalf("true via the worker: %s", res.Outcome.Resolution)
		}
	}
	eng := e.runner.Engine.(*container.Engine)
	runOnce()
	if out, err := exec.Command(podman, "run", "--rm", e.image, "true").CombinedOutput(); err != nil {
		b.Fatalf("podman run: %v: %s", err, out)
	}
	var viaWorker, viaWorkerRemoved, viaPodman []time.Duration
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		runOnce()
		viaWorker = append(viaWorker, time.Since(t0))
		eng.WaitRemovals()
		viaWorkerRemoved = append(viaWorkerRemoved, time.Since(t0))
		t0 = time.Now()
		if out, err := exec.Command(podman, "run", "--rm", e.image, "true").CombinedOutput(); err != nil {
			b.Fatalf("podman run: %v: %s", err, out)
		}
		viaPodman = append(viaPodman, time.Since(t0))
	}
	b.StopTimer()
	mw, mr, mp := medianOf(viaWorker), medianOf(viaWorkerRemoved), medianOf(viaPodman)
	b.ReportMetric(float64(mw.Microseconds())/1000, "worker-ms/median")
	b.ReportMetric(float64(mr.Microseconds())/1000, "worker-removed-ms/median")
	b.ReportMetric(float64(mp.Microseconds())/1000, "podman-run-ms/median")
	b.ReportMetric(100*(float64(mw)-float64(mp))/float64(mp), "overhead-%")
	b.ReportMetric(100*(float64(mr)-float64(mp))/float64(mp), "overhead-removed-%")
}

func medianOf(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}
