//go:build unix

package localqueue_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/taskcluster/localqueue"
)

// slowBodyRequest starts a createTask whose body (Content-Length 100000)
// never comes beyond its first byte.
func slowBodyRequest(addr string) (net.Conn, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	_, err = fmt.Fprintf(c, "PUT /api/queue/v1/task/slow HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{", addr)
	if err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func startServer(t *testing.T, opts localqueue.Options) *localqueue.Running {
	opts.Dir, opts.NoSync, opts.Logger = t.TempDir(), true, slog.New(slog.DiscardHandler)
	r, err := localqueue.Start("127.0.0.1:0", opts)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = r.Stop(ctx)
	})
	return r
}

// TestPingWhileSlowBodyConnectionsOpen: 5,000 connections on loopback
// each send a request whose body never arrives; the Queue still answers
// ping within 1 s.
func TestPingWhileSlowBodyConnectionsOpen(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 5,000 connections")
	}
	const n = 5000
	var lim syscall.Rlimit
	require.NoError(t, syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim))
	if lim.Cur < 2*n+512 {
		t.Skipf("open-file limit %d is below the %d this test needs (both ends of %d connections in one process); raise ulimit -n", lim.Cur, 2*n+512, n)
	}
	r := startServer(t, localqueue.Options{})
	addr := strings.TrimPrefix(r.URL, "http://")
	conns := make([]net.Conn, 0, n)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for range n {
		c, err := slowBodyRequest(addr)
		require.NoError(t, err, "opening slow connection %d (open-file limit too low?)", len(conns))
		conns = append(conns, c)
	}
	client := &http.Client{Timeout: time.Second}
	resp, err := client.Get(r.URL + "/api/queue/v1/ping")
	require.NoError(t, err, "ping with %d slow-body connections open", n)
	defer resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
}

// TestSlowBodyConnectionClosed: a request body that stops arriving is cut
// after BodyReadTimeout and the connection closed, so slow clients cannot
// hold the server's connections forever.
func TestSlowBodyConnectionClosed(t *testing.T) {
	r := startServer(t, localqueue.Options{BodyReadTimeout: 200 * time.Millisecond})
	c, err := slowBodyRequest(strings.TrimPrefix(r.URL, "http://"))
	require.NoError(t, err)
	defer c.Close()
	// Bounded by the test's own deadline, not a timing assertion: without
	// the body deadline the server would wait for the body forever.
	require.NoError(t, c.SetReadDeadline(time.Now().Add(30*time.Second)))
	_, err = io.ReadAll(bufio.NewReader(c))
	assert.NoError(t, err, "the server closes the connection (EOF), not our deadline")
}

// TestMaxConnectionsBoundsOpenConnections: with MaxConnections 4, a fifth
// client is not served while four slow-body connections are open, and is
// served once the body deadline has cut them.
func TestMaxConnectionsBoundsOpenConnections(t *testing.T) {
	r := startServer(t, localqueue.Options{MaxConnections: 4, BodyReadTimeout: 3 * time.Second})
	addr := strings.TrimPrefix(r.URL, "http://")
	for range 4 {
		c, err := slowBodyRequest(addr)
		require.NoError(t, err)
		defer c.Close()
	}
	resp, err := (&http.Client{Timeout: 300 * time.Millisecond}).Get(r.URL + "/api/queue/v1/ping")
	if err == nil {
		resp.Body.Close()
	}
	require.Error(t, err, "a fifth connection is held back while four are open")
	resp, err = (&http.Client{Timeout: 30 * time.Second}).Get(r.URL + "/api/queue/v1/ping")
	require.NoError(t, err, "served once the slow bodies were cut")
	resp.Body.Close()
}
