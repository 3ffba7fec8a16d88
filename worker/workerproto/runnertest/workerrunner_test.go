package runnertest_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/taskcluster"
	"github.com/workergen/workergen/taskcluster/hawk"
	"github.com/workergen/workergen/taskcluster/localqueue"
	"github.com/workergen/workergen/worker/gwconfig"
	"github.com/workergen/workergen/worker/workerproto"
	"github.com/workergen/workergen/worker/workerproto/runnertest"
)

// TestMain turns the test binary into a small worker when
// RUNNERTEST_WORKER is set: enough of a generic-worker to exercise
// runnertest.WorkerRunner with workerproto, gwconfig and localqueue's
// worker-manager together.
func TestMain(m *testing.M) {
	if os.Getenv("RUNNERTEST_WORKER") == "1" {
		os.Exit(fakeWorker(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// fakeWorker loads its config (an error is reported and exits 73), then
// asks shouldWorkerTerminate every 20 ms with its current credentials,
// printing "ok <accessToken prefix>" after each success, until worker-manager
// says to terminate (exit 70) or graceful-termination comes (exit 72).
func fakeWorker(args []string) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	configPath := fs.String("config", "", "")
	withRunner := fs.Bool("with-worker-runner", false, "")
	if len(args) == 0 || args[0] != "run" || fs.Parse(args[1:]) != nil || !*withRunner {
		return 64
	}
	c := workerproto.New(os.Stdin, os.Stdout, workerproto.AllCapabilities...)
	stop := make(chan struct{})
	var creds *taskcluster.CredentialsHolder
	renewed := make(chan workerproto.NewCredentials, 1)
	c.OnNewCredentials(func(n workerproto.NewCredentials) { renewed <- n })
	c.OnGracefulTermination(func(workerproto.GracefulTermination) { close(stop) })
	if err := c.Start(context.Background()); err != nil {
		return 69
	}
	log := slog.New(c.LogHandler(slog.NewTextHandler(os.Stderr, nil)))
	cfg, err := gwconfig.Load(*configPath, gwconfig.Options{})
	if err != nil {
		_ = c.Send(workerproto.ErrorReport{Kind: "worker-error", Title: "invalid config", Description: err.Error()})
		_ = c.Send(workerproto.Shutdown{})
		return 73
	}
	cfg.LogWarnings(log)
	doc := cfg.Document
	cr := doc["credentials"].(map[string]any)
	creds = taskcluster.NewCredentialsHolder(taskcluster.Credentials{ClientID: cr["clientId"].(string), AccessToken: cr["accessToken"].(string), Certificate: cr["certificate"].(string)})
	client := &taskcluster.Client{RootURL: doc["rootUrl"].(string), Credentials: creds.Get, MaxElapsedTime: time.Second}
	pool, group, id := doc["workerPoolId"].(string), doc["workerGroup"].(string), doc["workerId"].(string)
	for {
		select {
		case n := <-renewed:
			creds.Set(taskcluster.Credentials{ClientID: n.ClientID, AccessToken: n.AccessToken, Certificate: n.Certificate})
		case <-stop:
			_ = c.Send(workerproto.Shutdown{})
			return 72
		case <-time.After(20 * time.Millisecond):
		}
		should, err := client.WorkerManager().ShouldWorkerTerminate(context.Background(), pool, group, id)
		if err != nil {
			log.Error("shouldWorkerTerminate failed", "err", err)
			continue
		}
		fmt.Fprintf(c.Output(), "ok %s\n", creds.Get().AccessToken[:8])
		if should.Terminate {
			log.Info("terminating", "reason", should.Reason)
			_ = c.Send(workerproto.Shutdown{})
			return 70
		}
	}
}

const pool = "proj/linux"

func startQueue(t *testing.T, workerConfig map[string]any) (*localqueue.Server, string, string) {
	s, err := localqueue.New(localqueue.Options{Dir: t.TempDir(), NoSync: true, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		srv.Close()
		s.Close()
	})
	require.NoError(t, s.CreateWorkerPool(localqueue.WorkerPool{WorkerPoolID: pool, WorkerConfig: workerConfig}))
	secret := hawk.NewSeed()
	require.NoError(t, s.CreateStaticWorker(pool, "static", "w1", secret))
	return s, srv.URL, secret
}

func staticWorker(t *testing.T, rootURL, secret string) runnertest.StaticWorker {
	return runnertest.StaticWorker{
		Client:       taskcluster.Client{RootURL: rootURL, MaxElapsedTime: time.Second},
		WorkerPoolID: pool, WorkerGroup: "static", WorkerID: "w1", StaticSecret: secret,
		WorkerConfig: map[string]any{"ed25519SigningKeyLocation": "/etc/signing.key"},
		Path:         os.Args[0], ConfigPath: filepath.Join(t.TempDir(), "config.json"),
		Env: append(os.Environ(), "RUNNERTEST_WORKER=1"), Stderr: os.Stderr,
	}
}

func exitCode(t *testing.T, err error) int {
	var exit *exec.ExitError
	require.True(t, errors.As(err, &exit), "%v", err)
	return exit.ExitCode()
}

func TestStaticWorkerLifecycle(t *testing.T) {
	s, rootURL, secret := startQueue(t, map[string]any{"genericWorker": map[string]any{"config": map[string]any{"idleTimeoutSecs": 5}}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	wr, err := runnertest.StartStaticWorker(ctx, staticWorker(t, rootURL, secret))
	require.NoError(t, err)
	assert.Equal(t, float64(5), wr.Config["idleTimeoutSecs"], "the pool's nested genericWorker.config is merged")
	assert.Equal(t, "proj", wr.Config["provisionerId"])
	assert.Equal(t, `{"cloud":"static"}`, wr.Config["workerLocation"])
	caps, err := wr.Hello(ctx)
	require.NoError(t, err)
	assert.ElementsMatch(t, runnertest.All, caps)

	old := wr.Credentials()
	_, err = wr.WaitOutput(ctx, "ok "+old.AccessToken[:8])
	require.NoError(t, err)
	_, renewed, err := wr.RenewCredentials(ctx)
	require.NoError(t, err)
	_, err = wr.WaitOutput(ctx, "ok "+renewed.AccessToken[:8])
	require.NoError(t, err, "the worker calls with its new credentials")
	require.NoError(t, s.RevokeCredentials(old))
	time.Sleep(100 * time.Millisecond) // a few more calls, all with the new credentials

	require.NoError(t, s.SetShouldTerminate(pool, "static", "w1", true, "pool is shrinking"))
	err = wr.Wait()
	assert.Equal(t, 70, exitCode(t, err))
	w, err := s.Worker(pool, "static", "w1")
	require.NoError(t, err)
	assert.Equal(t, localqueue.WorkerStopped, w.State, "shutdown made the runner call removeWorker")
	require.Len(t, w.Credentials, 2)
	assert.True(t, w.Credentials[0].Revoked)
	assert.False(t, w.Credentials[1].FirstUsed.IsZero())
	sent := wr.SentMessages()
	require.Equal(t, "new-credentials", sent[len(sent)-1].Type)
	t.Logf("new-credentials to the first call signed with them: %v", w.Credentials[1].FirstUsed.Sub(sent[len(sent)-1].At))
	assert.Empty(t, wr.CallErrors())
	assert.Empty(t, wr.Violations())
	var warned, terminating bool
	for _, m := range wr.Messages("log") {
		body := m["body"].(map[string]any)
		warned = warned || strings.Contains(body["textPayload"].(string), `"ed25519SigningKeyLocation" is ignored`)
		terminating = terminating || (body["textPayload"] == "terminating" && body["reason"] == "pool is shrinking")
		assert.NotEqual(t, "shouldWorkerTerminate failed", body["textPayload"], "no call failed: %v", body)
	}
	assert.True(t, warned, "the ignored key was warned about over the protocol")
	assert.True(t, terminating)
}

func TestStaticWorkerConfigError(t *testing.T) {
	s, rootURL, secret := startQueue(t, map[string]any{"idleTimeoutSec": 5})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	wr, err := runnertest.StartStaticWorker(ctx, staticWorker(t, rootURL, secret))
	require.NoError(t, err)
	assert.Equal(t, 73, exitCode(t, wr.Wait()))
	errs := s.WorkerPoolErrors(pool)
	require.Len(t, errs, 1, "error-report became a worker-pool error: %v", wr.CallErrors())
	assert.Equal(t, "invalid config", errs[0].Title)
	assert.Contains(t, errs[0].Description, `key "idleTimeoutSec": not a generic-worker config key (did you mean "idleTimeoutSecs"?)`)
	w, err := s.Worker(pool, "static", "w1")
	require.NoError(t, err)
	assert.Equal(t, localqueue.WorkerStopped, w.State)
}

func TestGracefulTerminationExits72(t *testing.T) {
	_, rootURL, secret := startQueue(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	wr, err := runnertest.StartStaticWorker(ctx, staticWorker(t, rootURL, secret))
	require.NoError(t, err)
	_, err = wr.WaitOutput(ctx, "ok ")
	require.NoError(t, err)
	require.NoError(t, wr.GracefulTermination(false))
	assert.Equal(t, 72, exitCode(t, wr.Wait()))
	assert.Len(t, wr.Messages("shutdown"), 1)
}
