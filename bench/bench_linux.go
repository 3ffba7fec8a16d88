package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/workergen/workergen/taskcluster"
	"github.com/workergen/workergen/taskcluster/localqueue"
	"github.com/workergen/workergen/taskcluster/tcwire"
)

// Options configure Run.
type Options struct {
	// Workergen is the workergen linux-native binary (required).
	Workergen string
	// GenericWorker is generic-worker's insecure binary; when empty or
	// missing, only workergen runs and a message says so.
	GenericWorker string
	// Dir holds the Queue's state, the generated data and each run's
	// worker directory and log (dist/bench by default in the mage target).
	// It is emptied first.
	Dir string
	// Rounds is how many times each scenario runs on each worker (default 5).
	Rounds int
	// SizeMB is the size of the stdout and file-artifact data (default 100).
	SizeMB int
	// Scenarios selects scenarios by name (all when empty); see Scenarios.
	Scenarios []string
	// Out receives progress lines and the table.
	Out io.Writer
	// FloorCommand runs FloorClient in a process of its own (argv before
	// FloorClient's arguments), for a round-trip floor paid like the
	// workers pay it; when empty the floor is measured in this process.
	FloorCommand []string
}

// sample is one measured run.
type sample struct {
	wall, cpu     time.Duration
	idleRSS, peak int64
	disk          int64
	// wallOnly: only wall was measured (a floor of Queue calls).
	wallOnly bool
	err      error
}

// bencher is the state of one Run.
type bencher struct {
	opts     Options
	q        *localqueue.Running
	queueDir string
	client   *taskcluster.Client
	cred     taskcluster.Credentials
	data     dataFiles
	gwKey    string
	workers  []workerKind
}

// Run measures every selected scenario on both workers and writes the
// table of medians and ratios, then every repeat, to opts.Out.
func Run(ctx context.Context, opts Options) error {
	if opts.Rounds <= 0 {
		opts.Rounds = 5
	}
	if opts.SizeMB <= 0 {
		opts.SizeMB = 100
	}
	if opts.Out == nil {
		opts.Out = os.Stdout
	}
	scens, err := selectScenarios(opts.Scenarios)
	if err != nil {
		return err
	}
	var need dataKind
	for _, sc := range scens {
		need |= sc.data
	}
	b, err := setUp(ctx, opts, need)
	if err != nil {
		return err
	}
	defer b.q.Stop(context.Background())
	res := newResults()
	for round := 1; round <= opts.Rounds; round++ {
		for _, sc := range scens {
			if err := ctx.Err(); err != nil {
				return err
			}
			if sc.floor != nil {
				f, err := sc.floor(ctx, b, sc, round)
				if err != nil {
					return fmt.Errorf("floor of %s: %w", sc.name, err)
				}
				res.add(sc.name, "floor", f)
			}
			order := slices.Clone(b.workers)
			if round%2 == 0 {
				slices.Reverse(order)
			}
			for _, k := range order {
				if reason := sc.skip[k.name]; reason != "" {
					continue
				}
				s := b.runOne(ctx, k, sc, round)
				fmt.Fprintf(opts.Out, "round %d %-14s %-15s %s\n", round, sc.name, k.name, s.String(sc))
				res.add(sc.name, k.name, s)
			}
		}
	}
	fmt.Fprintln(opts.Out)
	return res.print(opts.Out, scens, b.workerNames(), opts)
}

func setUp(ctx context.Context, opts Options, need dataKind) (*bencher, error) {
	for _, p := range []*string{&opts.Dir, &opts.Workergen, &opts.GenericWorker} {
		if *p == "" {
			continue
		}
		abs, err := filepath.Abs(*p)
		if err != nil {
			return nil, err
		}
		*p = abs
	}
	if err := os.RemoveAll(opts.Dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, err
	}
	b := &bencher{opts: opts, queueDir: filepath.Join(opts.Dir, "queue")}
	if _, err := os.Stat(opts.Workergen); err != nil {
		return nil, fmt.Errorf("workergen binary: %w", err)
	}
	b.workers = append(b.workers, workergenKind(opts.Workergen))
	if opts.GenericWorker == "" {
		fmt.Fprintln(opts.Out, "generic-worker: no binary given; running workergen alone (no ratios)")
	} else if _, err := os.Stat(opts.GenericWorker); err != nil {
		fmt.Fprintf(opts.Out, "generic-worker: %v; running workergen alone (no ratios)\n", err)
	} else {
		key, err := gwSigningKey(ctx, opts.GenericWorker, opts.Dir)
		if err != nil {
			return nil, err
		}
		b.gwKey = key
		b.workers = append(b.workers, genericWorkerKind(opts.GenericWorker))
	}
	if need != 0 {
		var what []string
		for _, k := range []struct {
			kind dataKind
			text string
		}{{dataText, fmt.Sprintf("%d MB text", opts.SizeMB)}, {dataRandom, fmt.Sprintf("%d MB random", opts.SizeMB)}, {dataDir, "500 files"}} {
			if need&k.kind != 0 {
				what = append(what, k.text)
			}
		}
		fmt.Fprintf(opts.Out, "generating data (%s) in %s ...\n", strings.Join(what, ", "), opts.Dir)
	}
	data, err := makeData(filepath.Join(opts.Dir, "data"), int64(opts.SizeMB)<<20, need)
	if err != nil {
		return nil, err
	}
	b.data = data
	b.cred = taskcluster.Credentials{ClientID: "bench", AccessToken: localqueue.RandomAccessToken()}
	q, err := localqueue.Start("127.0.0.1:0", localqueue.Options{
		Dir:      b.queueDir,
		Clients:  []localqueue.Client{{ClientID: b.cred.ClientID, AccessToken: b.cred.AccessToken, Scopes: []string{"*"}}},
		NoSync:   true,
		LongPoll: 5 * time.Second,
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		return nil, err
	}
	b.q = q
	b.client = &taskcluster.Client{RootURL: q.URL, Credentials: taskcluster.StaticCredentials(b.cred)}
	return b, nil
}

func (b *bencher) workerNames() []string {
	var n []string
	for _, k := range b.workers {
		n = append(n, k.name)
	}
	return n
}

// createTasks creates n tasks in taskQueueId queueID with payload(i),
// each depending on the tasks in after (none: pending at once), and
// returns their ids.
func (b *bencher) createTasks(ctx context.Context, queueID string, n int, payload func(i int) map[string]any, after ...string) ([]string, error) {
	now := time.Now().UTC()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = localqueue.NewTaskID()
		def := map[string]any{
			"taskQueueId":  queueID,
			"created":      now,
			"deadline":     now.Add(2 * time.Hour),
			"expires":      now.Add(24 * time.Hour),
			"payload":      payload(i),
			"dependencies": after,
			"metadata": map[string]string{
				"name": fmt.Sprintf("bench %s %d", queueID, i), "description": "side-by-side benchmark",
				"owner": "bench@example.com", "source": "https://example.com/workergen/bench",
			},
		}
		if len(after) > 0 {
			def["dependencies"] = after
		}
		if _, err := b.q.CreateTaskJSON(ctx, ids[i], def); err != nil {
			return nil, err
		}
	}
	return ids, nil
}

func truePayload(int) map[string]any { return shPayload("true") }

func shPayload(script string) map[string]any {
	// generic-worker refuses features.liveLog (on by default) unless
	// enableLiveLog is set, which needs its livelog binary.
	return map[string]any{"command": [][]string{{"sh", "-c", script}}, "maxRunTime": 1800,
		"features": map[string]bool{"liveLog": false}}
}

// wait waits for ids to resolve and checks they ended in state want.
func (b *bencher) wait(ctx context.Context, timeout time.Duration, want string, ids []string) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	sts, err := b.q.WaitResolved(ctx, 2*time.Millisecond, ids...)
	if err != nil {
		return err
	}
	var bad []string
	for _, st := range sts {
		if st.State != want {
			reason := ""
			if n := len(st.Runs); n > 0 {
				reason = "/" + st.Runs[n-1].ReasonResolved
			}
			bad = append(bad, st.TaskID+" "+st.State+reason)
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%d of %d tasks did not end %s: %s", len(bad), len(ids), want, strings.Join(bad, ", "))
	}
	return nil
}

// runOne runs scenario sc once on worker k.
func (b *bencher) runOne(ctx context.Context, k workerKind, sc *scenario, round int) (s sample) {
	short := map[string]string{"workergen": "wg", "generic-worker": "gw"}[k.name]
	env := &runEnv{
		dir:     filepath.Join(b.opts.Dir, "runs", fmt.Sprintf("%s-%s-%d", sc.name, short, round)),
		rootURL: b.q.URL, clientID: b.cred.ClientID, accessToken: b.cred.AccessToken,
		provisioner: "bench", workerType: fmt.Sprintf("%s-%s-%d", sc.name, short, round),
		capacity: sc.capacity, storage: sc.storage, gwSigningKey: b.gwKey,
	}
	if env.storage == "" {
		env.storage = taskcluster.StorageS3
	}
	queueID := env.provisioner + "/" + env.workerType
	if err := os.MkdirAll(env.dir, 0o755); err != nil {
		return sample{err: err}
	}
	p, err := start(k, env)
	if err != nil {
		return sample{err: err}
	}
	defer p.stop()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-p.gone:
			cancel()
		case <-ctx.Done():
		}
	}()
	logHint := func(err error) error {
		if perr := p.exited(); perr != nil {
			err = fmt.Errorf("%w (worker ended: %v)", err, perr)
		}
		return fmt.Errorf("%w; see %s", err, filepath.Join(env.dir, "worker.log"))
	}
	warm, err := b.createTasks(ctx, queueID, 1, truePayload)
	if err == nil {
		err = b.wait(ctx, 2*time.Minute, tcwire.StateCompleted, warm)
	}
	if err != nil {
		return sample{err: logHint(fmt.Errorf("warm-up task: %w", err))}
	}
	time.Sleep(500 * time.Millisecond)
	pid := p.cmd.Process.Pid
	s.idleRSS = rss(pid)
	s0, err := readStats(pid)
	if err != nil {
		return sample{err: err}
	}
	// The scenario's tasks wait on a gate task that no worker claims, so
	// creating them is not timed: resolving the gate makes them all
	// pending at once, and the clock starts then.
	gate, err := b.createTasks(ctx, "bench/gate", 1, truePayload)
	if err != nil {
		return sample{err: err}
	}
	ids, err := b.createTasks(ctx, queueID, sc.tasks, sc.payload(b), gate[0])
	if err != nil {
		return sample{err: err}
	}
	peak := sampleRSS(pid)
	t0 := time.Now()
	if _, err := claimResolve(ctx, b.client, "bench/gate", 1, false); err != nil {
		return sample{err: fmt.Errorf("resolving the gate task: %w", err)}
	}
	err = b.wait(ctx, 30*time.Minute, sc.expect, ids)
	s.wall = time.Since(t0)
	// Let work the worker does after resolving (cleanup) count too.
	time.Sleep(300 * time.Millisecond)
	s1, serr := readStats(pid)
	s.peak = peak.done()
	b.dropBlobs(append(warm, ids...))
	if err != nil {
		return sample{err: logHint(err)}
	}
	if serr != nil {
		return sample{err: serr}
	}
	s.cpu = s1.cpu - s0.cpu
	s.disk = s1.writeBytes - s0.writeBytes
	return s
}

// dropBlobs deletes the stored artifact bytes of tasks (the benchmark
// never reads them back), so rounds of 100 MB artifacts do not fill the
// disk.
func (b *bencher) dropBlobs(ids []string) {
	for _, id := range ids {
		_ = os.RemoveAll(filepath.Join(b.queueDir, "blobs", id))
	}
}

// taskQueue returns a Queue client signing with a claim's task credentials.
func (b *bencher) taskQueue(c *taskcluster.TaskClaim) *taskcluster.Queue {
	tc := *b.client
	tc.Credentials = taskcluster.StaticCredentials(c.Credentials)
	return tc.Queue()
}
