package taskcluster

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDefaultHTTPClientReusesConcurrentConnections: n requests at once,
// twice, through the default client over HTTP/1.1 (the worker binaries'
// only protocol): the first wave opens n connections, the second reuses
// them all (net/http's default transport keeps 2 idle per host and would
// open n-2 new ones).
func TestDefaultHTTPClientReusesConcurrentConnections(t *testing.T) {
	const n = 8
	var newConns atomic.Int64
	var arrived sync.WaitGroup
	var release atomic.Pointer[chan struct{}]
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived.Done()
		<-*release.Load() // every request of the wave is in flight at once
		_, _ = io.WriteString(w, "ok")
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			newConns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	client := newHTTPClient()
	defer client.CloseIdleConnections()

	wave := func() {
		arrived.Add(n)
		ch := make(chan struct{})
		release.Store(&ch)
		var done sync.WaitGroup
		for range n {
			done.Go(func() {
				resp, err := client.Get(srv.URL)
				if !assert.NoError(t, err) {
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body) // at EOF the connection is back in the idle pool
				_ = resp.Body.Close()
			})
		}
		waitGroup(t, &arrived)
		close(ch)
		done.Wait()
	}
	wave()
	require.Equal(t, int64(n), newConns.Load(), "the first wave opens a connection per request")
	wave()
	assert.Equal(t, int64(n), newConns.Load(), "the second wave reuses the first's connections")
}

// waitGroup waits for wg, failing the test after a minute (a hung request).
func waitGroup(t *testing.T, wg *sync.WaitGroup) {
	t.Helper()
	ch := make(chan struct{})
	go func() { wg.Wait(); close(ch) }()
	select {
	case <-ch:
	case <-time.After(time.Minute):
		t.Fatal("requests did not arrive")
	}
}
