package workerproto_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/worker/workerproto"
	"github.com/workergen/workergen/worker/workerproto/runnertest"
)

// pair connects a worker Conn and a runnertest.Runner over pipes.
func pair(t *testing.T, runnerCaps []string, workerCaps ...string) (*workerproto.Conn, *runnertest.Runner) {
	t.Helper()
	toWorkerR, toWorkerW := io.Pipe()
	fromWorkerR, fromWorkerW := io.Pipe()
	c := workerproto.New(toWorkerR, fromWorkerW, workerCaps...)
	started := make(chan error, 1)
	go func() { started <- c.Start(context.Background()) }()
	r, err := runnertest.New(fromWorkerR, toWorkerW, runnertest.Options{Capabilities: runnerCaps})
	require.NoError(t, err)
	require.NoError(t, <-started)
	t.Cleanup(func() {
		toWorkerW.Close()
		fromWorkerW.Close()
		<-c.Done()
		<-r.Done()
		assert.Empty(t, r.Violations(), "the worker kept the protocol")
	})
	return c, r
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestHandshakeAgreesOnCommonCapabilities(t *testing.T) {
	c, r := pair(t, []string{"graceful-termination", "log", "shutdown", "future-thing"}, workerproto.AllCapabilities...)
	caps, err := r.Hello(ctx(t))
	require.NoError(t, err)
	assert.Equal(t, []string{"graceful-termination", "log", "shutdown"}, caps)
	assert.Equal(t, caps, c.Capabilities())
	assert.True(t, c.Capable(workerproto.CapShutdown))
	assert.False(t, c.Capable(workerproto.CapNewCredentials))
	assert.False(t, c.Capable("future-thing"), "the worker did not offer it")

	err = c.Send(workerproto.ErrorReport{Kind: "worker-error", Title: "t"})
	assert.ErrorIs(t, err, workerproto.ErrNotCapable, "error-report was not agreed")
	require.NoError(t, c.Send(workerproto.Shutdown{}))
	m, err := r.WaitFor(ctx(t), "shutdown")
	require.NoError(t, err)
	assert.Equal(t, runnertest.Message{"type": "shutdown"}, m)
}

func TestHandshakeWithNoCapabilities(t *testing.T) {
	c, r := pair(t, []string{}, workerproto.AllCapabilities...)
	caps, err := r.Hello(ctx(t))
	require.NoError(t, err)
	assert.Empty(t, caps)
	assert.Equal(t, []any{}, r.Messages("hello")[0]["capabilities"], "an empty list, not null")
	assert.False(t, c.Capable(workerproto.CapLog))
	assert.ErrorIs(t, c.Send(workerproto.Shutdown{}), workerproto.ErrNotCapable)
}

func TestRunnerMessagesReachHandlers(t *testing.T) {
	c, r := pair(t, nil, workerproto.AllCapabilities...)
	var passed bytes.Buffer
	var pmu sync.Mutex
	c.SetPassthrough(writerFunc(func(p []byte) (int, error) {
		pmu.Lock()
		defer pmu.Unlock()
		return passed.Write(p)
	}))
	got := make(chan workerproto.Message, 4)
	c.OnGracefulTermination(func(g workerproto.GracefulTermination) { got <- g })
	c.OnNewCredentials(func(n workerproto.NewCredentials) { got <- n })
	_, err := r.Hello(ctx(t))
	require.NoError(t, err)

	require.NoError(t, r.SendLine(`~{"type":"some-future-message","x":1}`), "unknown types are ignored")
	require.NoError(t, r.SendLine(`~{"type":"graceful-termination","finish-tasks":"yes"}`), "a wrong property type is not a message")
	require.NoError(t, r.SendLine(`~{not json}`))
	require.NoError(t, r.SendLine(`plain text`))
	require.NoError(t, r.NewCredentials("cid", "tok", ""))
	require.NoError(t, r.NewCredentials("cid2", "tok2", `{"version":1}`))
	require.NoError(t, r.GracefulTermination(false))

	assert.Equal(t, workerproto.NewCredentials{ClientID: "cid", AccessToken: "tok"}, <-got)
	assert.Equal(t, workerproto.NewCredentials{ClientID: "cid2", AccessToken: "tok2", Certificate: `{"version":1}`}, <-got)
	assert.Equal(t, workerproto.GracefulTermination{FinishTasks: false}, <-got)
	pmu.Lock()
	defer pmu.Unlock()
	assert.Equal(t, "~{\"type\":\"graceful-termination\",\"finish-tasks\":\"yes\"}\n~{not json}\nplain text\n", passed.String())
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestMessagesOfCapabilitiesNotAgreedAreIgnored(t *testing.T) {
	c, r := pair(t, []string{"graceful-termination"}, workerproto.AllCapabilities...)
	creds := make(chan workerproto.NewCredentials, 1)
	graceful := make(chan workerproto.GracefulTermination, 1)
	c.OnNewCredentials(func(n workerproto.NewCredentials) { creds <- n })
	c.OnGracefulTermination(func(g workerproto.GracefulTermination) { graceful <- g })
	_, err := r.Hello(ctx(t))
	require.NoError(t, err)
	require.NoError(t, r.SendLine(`~{"type":"new-credentials","client-id":"x","access-token":"y"}`))
	require.NoError(t, r.GracefulTermination(true))
	assert.Equal(t, workerproto.GracefulTermination{FinishTasks: true}, <-graceful)
	assert.Empty(t, creds, "new-credentials was not agreed")
}

func TestEarlyMessageWaitsForItsHandler(t *testing.T) {
	c, r := pair(t, nil, workerproto.AllCapabilities...)
	_, err := r.Hello(ctx(t))
	require.NoError(t, err)
	require.NoError(t, r.NewCredentials("old", "a", ""))
	require.NoError(t, r.NewCredentials("new", "b", ""))
	// A later message proves the earlier ones have been read.
	probe := make(chan struct{})
	c.OnGracefulTermination(func(workerproto.GracefulTermination) { close(probe) })
	require.NoError(t, r.GracefulTermination(true))
	<-probe
	var got []string
	c.OnNewCredentials(func(n workerproto.NewCredentials) { got = append(got, n.ClientID) })
	assert.Equal(t, []string{"new"}, got, "only the latest early message is kept")
}

func TestStartPassesThroughLinesBeforeWelcome(t *testing.T) {
	in := strings.NewReader("starting up\n~{\"type\":\"graceful-termination\",\"finish-tasks\":true}\n~{\"type\":\"welcome\",\"capabilities\":[\"log\"]}\n")
	var out, passed bytes.Buffer
	c := workerproto.New(in, &out, workerproto.CapLog, workerproto.CapGracefulTermination)
	c.SetPassthrough(&passed)
	require.NoError(t, c.Start(ctx(t)))
	<-c.Done()
	assert.Equal(t, io.EOF, c.Err())
	assert.Equal(t, "starting up\n", passed.String())
	assert.Equal(t, "~{\"type\":\"hello\",\"capabilities\":[\"log\"]}\n", out.String())
}

func TestStartFailsWithoutWelcome(t *testing.T) {
	c := workerproto.New(strings.NewReader("no runner here\n"), io.Discard, workerproto.AllCapabilities...)
	err := c.Start(ctx(t))
	require.ErrorIs(t, err, io.EOF)
	assert.False(t, c.Capable(workerproto.CapLog))

	r, _ := io.Pipe()
	c = workerproto.New(r, io.Discard)
	cctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, c.Start(cctx), context.Canceled)
	r.Close()
}

func TestNilConnIsNotCapable(t *testing.T) {
	var c *workerproto.Conn
	assert.False(t, c.Capable(workerproto.CapShutdown))
	assert.Nil(t, c.Capabilities())
	assert.ErrorIs(t, c.Send(workerproto.Shutdown{}), workerproto.ErrNotCapable)
}

func TestOutputKeepsLinesWholeBetweenMessages(t *testing.T) {
	c, r := pair(t, nil, workerproto.AllCapabilities...)
	_, err := r.Hello(ctx(t))
	require.NoError(t, err)
	out := c.Output()
	fmt.Fprint(out, "half a ")
	require.NoError(t, c.Send(workerproto.Shutdown{}))
	fmt.Fprint(out, "line\n~{\"type\":\"shutdown\"}\nno newline")
	require.NoError(t, c.Flush())
	_, err = r.WaitOutput(ctx(t), "no newline")
	require.NoError(t, err)
	assert.Equal(t, []string{"half a line", ` ~{"type":"shutdown"}`, "no newline"}, r.Output())
	assert.Len(t, r.Messages("shutdown"), 1, "a look-alike line is not a message")
}

func TestConcurrentSendsAndOutput(t *testing.T) {
	c, r := pair(t, nil, workerproto.AllCapabilities...)
	_, err := r.Hello(ctx(t))
	require.NoError(t, err)
	const n = 50
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for j := range n {
				if i%2 == 0 {
					assert.NoError(t, c.Send(workerproto.Log{Body: map[string]any{"textPayload": strings.Repeat("x", 500), "i": i, "j": j}}))
				} else {
					fmt.Fprintf(c.Output(), "%s %d %d\n", strings.Repeat("y", 500), i, j)
				}
			}
		})
	}
	wg.Wait()
	require.NoError(t, c.Send(workerproto.Shutdown{}))
	_, err = r.WaitFor(ctx(t), "shutdown")
	require.NoError(t, err)
	assert.Len(t, r.Messages("log"), 2*n)
	assert.Len(t, r.Output(), 2*n)
}

func TestErrorReportAndLogEncoding(t *testing.T) {
	c, r := pair(t, nil, workerproto.AllCapabilities...)
	_, err := r.Hello(ctx(t))
	require.NoError(t, err)
	require.NoError(t, c.Send(workerproto.ErrorReport{Kind: "worker-error", Title: "bad config", Description: "no workerId"}))
	require.NoError(t, c.Send(workerproto.ErrorReport{Kind: "k", Title: "t", Description: "d", Extra: map[string]any{"exitCode": 73}}))
	m, err := r.WaitFor(ctx(t), "error-report")
	require.NoError(t, err)
	assert.Equal(t, `{"description":"no workerId","extra":{},"kind":"worker-error","title":"bad config","type":"error-report"}`, m.String())
	require.NoError(t, c.Send(workerproto.Shutdown{}))
	_, err = r.WaitFor(ctx(t), "shutdown")
	require.NoError(t, err)
	assert.Equal(t, map[string]any{"exitCode": float64(73)}, r.Messages("error-report")[1]["extra"])
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	for _, m := range []workerproto.Message{
		workerproto.Welcome{Capabilities: []string{"log"}},
		workerproto.Hello{Capabilities: []string{}},
		workerproto.GracefulTermination{FinishTasks: true},
		workerproto.NewCredentials{ClientID: "a", AccessToken: "b", Certificate: "c"},
		workerproto.ErrorReport{Kind: "k", Title: "t", Description: "d", Extra: map[string]any{"n": 1.0}},
		workerproto.Log{Body: map[string]any{"textPayload": "hi"}},
		workerproto.Shutdown{},
	} {
		line, err := workerproto.Encode(m)
		require.NoError(t, err)
		assert.True(t, strings.HasPrefix(string(line), `~{"type":"`+m.Type()+`"`), string(line))
		got, ok := workerproto.Decode(line)
		require.True(t, ok, string(line))
		assert.Equal(t, m, got)
	}
	for _, bad := range []string{"", "~", "~{", "{\"type\":\"shutdown\"}", "~{}", `~{"type":3}`, `~{"type":"log","body":"text"}`, "~{\"type\":\"shutdown\"} trailing"} {
		_, ok := workerproto.Decode([]byte(bad))
		assert.False(t, ok, bad)
	}
	m, ok := workerproto.Decode([]byte("~{\"type\":\"future\",\"a\":1}\r\n"))
	require.True(t, ok)
	assert.Equal(t, "future", m.Type())
	assert.IsType(t, workerproto.Unknown{}, m)
}

// TestExecWorker runs this test binary as a worker under runnertest.Start:
// the worker answers hello, echoes new-credentials as output, reports an
// error and sends shutdown on graceful-termination, then exits 72.
func TestExecWorker(t *testing.T) {
	if os.Getenv("WORKERPROTO_HELPER") == "1" {
		os.Exit(helperWorker())
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestExecWorker$")
	cmd.Env = append(os.Environ(), "WORKERPROTO_HELPER=1")
	cmd.Stderr = os.Stderr
	r, err := runnertest.Start(cmd, runnertest.Options{})
	require.NoError(t, err)
	caps, err := r.Hello(ctx(t))
	require.NoError(t, err)
	assert.ElementsMatch(t, runnertest.All, caps)
	require.NoError(t, r.NewCredentials("client-2", "token-2", ""))
	_, err = r.WaitOutput(ctx(t), "using client-2")
	require.NoError(t, err)
	require.NoError(t, r.GracefulTermination(false))
	_, err = r.WaitFor(ctx(t), "shutdown")
	require.NoError(t, err)
	err = r.Wait()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit)
	assert.Equal(t, 72, exit.ExitCode())
	logs := r.Messages("log")
	require.NotEmpty(t, logs)
	assert.Equal(t, "stopping", logs[len(logs)-1]["body"].(map[string]any)["textPayload"])
	assert.Equal(t, "spot", r.Messages("error-report")[0]["kind"])
	assert.Empty(t, r.Violations())
}

func helperWorker() int {
	c := workerproto.New(os.Stdin, os.Stdout, workerproto.AllCapabilities...)
	stop := make(chan bool, 1)
	c.OnGracefulTermination(func(g workerproto.GracefulTermination) { stop <- g.FinishTasks })
	c.OnNewCredentials(func(n workerproto.NewCredentials) { fmt.Fprintf(c.Output(), "using %s\n", n.ClientID) })
	if err := c.Start(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 64
	}
	log := slog.New(c.LogHandler(slog.NewTextHandler(os.Stderr, nil)))
	log.Info("ready")
	<-stop
	log.Info("stopping")
	_ = c.Send(workerproto.ErrorReport{Kind: "spot", Title: "terminated"})
	_ = c.Send(workerproto.Shutdown{})
	return 72
}

// TestMessageCounts: the connection counts the messages it sent and
// received by type, the handshake included, and messages of types it does
// not know as "unknown"; lines that are no messages are not counted.
func TestMessageCounts(t *testing.T) {
	c, r := pair(t, nil, workerproto.AllCapabilities...)
	_, err := r.Hello(ctx(t))
	require.NoError(t, err)
	got := make(chan struct{}, 4)
	c.OnGracefulTermination(func(workerproto.GracefulTermination) { got <- struct{}{} })
	require.NoError(t, r.GracefulTermination(true))
	require.NoError(t, r.GracefulTermination(false))
	require.NoError(t, r.SendLine(`~{"type": "some-future-message"}`))
	require.NoError(t, r.SendLine("not a message"))
	<-got
	<-got
	require.NoError(t, c.Send(workerproto.Log{Body: map[string]any{"textPayload": "a"}}))
	require.NoError(t, c.Send(workerproto.Shutdown{}))
	_, err = r.WaitFor(ctx(t), "shutdown")
	require.NoError(t, err)

	counts := func() map[string]uint64 {
		m := map[string]uint64{}
		c.MessageCounts(func(direction, msgType string, n uint64) { m[direction+" "+msgType] = n })
		return m
	}
	// The unknown message comes after the second graceful-termination, in
	// order; wait until the reader has passed it.
	require.Eventually(t, func() bool { return counts()["received unknown"] == 1 }, 10*time.Second, 10*time.Millisecond)
	assert.Equal(t, map[string]uint64{
		"received welcome": 1, "received graceful-termination": 2, "received unknown": 1,
		"sent hello": 1, "sent log": 1, "sent shutdown": 1,
	}, counts())
	var order []string
	c.MessageCounts(func(direction, msgType string, _ uint64) { order = append(order, direction+" "+msgType) })
	assert.IsNonDecreasing(t, order)
	var nilConn *workerproto.Conn
	nilConn.MessageCounts(func(string, string, uint64) { t.Fatal("a nil Conn has no messages") })
}
