package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/workergen/workergen/taskcluster"
	"github.com/workergen/workergen/taskcluster/tcwire"
)

// Environment of FloorClient: the client it signs claimWork with (the
// access token stays out of the command line).
const (
	floorClientIDEnv    = "BENCH_FLOOR_CLIENT_ID"
	floorAccessTokenEnv = "BENCH_FLOOR_ACCESS_TOKEN"
)

// FloorClient is the round-trip floor measured from its own process, as
// the workers are: it claims n tasks of taskQueueId one at a time, resolves
// each (completed or failed) and prints the elapsed time in nanoseconds on
// stdout. args: ROOT_URL TASK_QUEUE_ID N completed|failed; the client is
// BENCH_FLOOR_CLIENT_ID / BENCH_FLOOR_ACCESS_TOKEN. Options.FloorCommand
// names the command that runs it (magetool's bench-floor).
func FloorClient(ctx context.Context, args []string) error {
	if len(args) != 4 {
		return fmt.Errorf("bench-floor: want ROOT_URL TASK_QUEUE_ID N completed|failed, got %q", args)
	}
	n, err := strconv.Atoi(args[2])
	if err != nil || n <= 0 {
		return fmt.Errorf("bench-floor: N=%q: want a positive integer", args[2])
	}
	c := &taskcluster.Client{RootURL: args[0], Credentials: taskcluster.StaticCredentials(taskcluster.Credentials{
		ClientID: os.Getenv(floorClientIDEnv), AccessToken: os.Getenv(floorAccessTokenEnv),
	})}
	took, err := claimResolve(ctx, c, args[1], n, args[3] == tcwire.StateFailed)
	if err != nil {
		return err
	}
	_, err = fmt.Println(took.Nanoseconds())
	return err
}

// claimResolve claims and resolves n tasks of queueID sequentially and
// returns the time it took.
func claimResolve(ctx context.Context, c *taskcluster.Client, queueID string, n int, failed bool) (time.Duration, error) {
	t0 := time.Now()
	for range n {
		cl, err := claimOne(ctx, c, queueID)
		if err != nil {
			return 0, err
		}
		tc := *c
		tc.Credentials = taskcluster.StaticCredentials(cl.Credentials)
		q := tc.Queue()
		if failed {
			_, err = q.ReportFailed(ctx, cl.Status.TaskID, cl.RunID)
		} else {
			_, err = q.ReportCompleted(ctx, cl.Status.TaskID, cl.RunID)
		}
		if err != nil {
			return 0, err
		}
	}
	return time.Since(t0), nil
}

// claimOne claims one task of queueID.
func claimOne(ctx context.Context, c *taskcluster.Client, queueID string) (*taskcluster.TaskClaim, error) {
	for {
		resp, err := c.Queue().ClaimWork(ctx, queueID, &taskcluster.ClaimWorkRequest{WorkerGroup: "local", WorkerID: "floor", Tasks: 1})
		if err != nil {
			return nil, err
		}
		if len(resp.Tasks) == 1 {
			return &resp.Tasks[0], nil
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
}

// rttFloor is the claimWork + reportCompleted (or reportFailed) round trip
// per task with no work, sequentially, sc.tasks times: from a separate
// process (Options.FloorCommand) when there is one, as the workers are;
// a client inside the Queue's own process answers about 0.2 ms sooner per
// task (no wake-up of another process).
func rttFloor(ctx context.Context, b *bencher, sc *scenario, round int) (sample, error) {
	queueID := fmt.Sprintf("bench/floor-%s-%d", sc.name, round)
	if _, err := b.createTasks(ctx, queueID, sc.tasks, truePayload); err != nil {
		return sample{}, err
	}
	failed := sc.expect == tcwire.StateFailed
	if len(b.opts.FloorCommand) == 0 {
		took, err := claimResolve(ctx, b.client, queueID, sc.tasks, failed)
		return sample{wall: took, wallOnly: true}, err
	}
	state := tcwire.StateCompleted
	if failed {
		state = tcwire.StateFailed
	}
	fc := b.opts.FloorCommand
	cmd := exec.CommandContext(ctx, fc[0], append(fc[1:len(fc):len(fc)], b.q.URL, queueID, strconv.Itoa(sc.tasks), state)...)
	cmd.Env = append(os.Environ(), floorClientIDEnv+"="+b.cred.ClientID, floorAccessTokenEnv+"="+b.cred.AccessToken)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return sample{}, fmt.Errorf("%s: %w: %s", strings.Join(fc, " "), err, strings.TrimSpace(stderr.String()))
	}
	ns, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil {
		return sample{}, fmt.Errorf("%s printed %q, not nanoseconds", strings.Join(fc, " "), out)
	}
	return sample{wall: time.Duration(ns), wallOnly: true}, nil
}
