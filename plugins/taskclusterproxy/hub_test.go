package taskclusterproxy

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

type named string

func (n named) ServeHTTP(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, string(n)) }

func TestHubRoutesByClientAddress(t *testing.T) {
	h := newHub(80)
	h.wait = 50 * time.Millisecond
	a, b := netip.MustParseAddr("10.88.0.2"), netip.MustParseAddr("10.88.0.3")
	runA, runB := named("run A"), named("run B")
	h.register(a, runA)
	h.register(b, runB)
	get := func(from string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", "http://taskcluster/api/queue/v1/ping", nil)
		req.RemoteAddr = from
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w
	}
	assert.Equal(t, "run A", get("10.88.0.2:40000").Body.String())
	assert.Equal(t, "run B", get("10.88.0.3:40001").Body.String())

	w := get("10.88.0.9:40002")
	assert.Equal(t, http.StatusForbidden, w.Code)
	assert.Contains(t, w.Body.String(), "10.88.0.9 is not the address of a task")

	// A request that arrives before its run is registered waits for it.
	h.wait = time.Minute
	c := netip.MustParseAddr("10.88.0.4")
	done := make(chan string)
	go func() { done <- get("10.88.0.4:40003").Body.String() }()
	h.register(c, named("run C"))
	assert.Equal(t, "run C", <-done)

	// Unregistering only removes the run that registered (an address may
	// already belong to the next container).
	h.unregister(a, runB)
	assert.Equal(t, "run A", get("10.88.0.2:40000").Body.String())
	h.unregister(a, runA)
	h.wait = 10 * time.Millisecond
	assert.Equal(t, http.StatusForbidden, get("10.88.0.2:40000").Code)

	// Two runs behind one address (the host's network) are both refused,
	// never one signing for the other; once one ends, the other is served.
	lo := netip.MustParseAddr("127.0.0.1")
	assert.True(t, h.register(lo, runA))
	assert.False(t, h.register(lo, runB))
	w = get("127.0.0.1:40004")
	assert.Equal(t, http.StatusForbidden, w.Code)
	assert.Contains(t, w.Body.String(), "2 running tasks share the address 127.0.0.1")
	h.unregister(lo, runA)
	assert.Equal(t, "run B", get("127.0.0.1:40004").Body.String())
}
