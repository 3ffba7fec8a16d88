package taskclusterproxy

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// registrationWait bounds how long a request from an address no run has
// registered yet waits for one: a container may call the proxy before the
// worker has learnt its address (Started stage).
const registrationWait = 15 * time.Second

// hub serves the proxy to containers (docker-worker payloads). Tasks call
// http://taskcluster/ (port 80), which every container resolves to the
// worker host's address on its network, so one server per such address
// serves every run; it tells runs apart by the address each connection
// comes from (engines.AddressedSandbox).
type hub struct {
	port int
	wait time.Duration // registrationWait; tests shorten it

	mu      sync.Mutex
	servers map[netip.Addr]*http.Server
	// runs holds the runs registered per sandbox address. More than one
	// means sandboxes share an address (the host's network): none of them
	// is served, rather than one signing for another.
	runs    map[netip.Addr][]http.Handler
	changed chan struct{} // closed and replaced when runs changes
}

func newHub(port int) *hub {
	return &hub{port: port, wait: registrationWait, servers: map[netip.Addr]*http.Server{}, runs: map[netip.Addr][]http.Handler{}, changed: make(chan struct{})}
}

// listen makes sure a server listens on ip:port.
func (h *hub) listen(ctx context.Context, ip netip.Addr) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.servers[ip]; ok {
		return nil
	}
	addr := netip.AddrPortFrom(ip, uint16(h.port)).String()
	l, err := listen(ctx, addr)
	if err != nil {
		return fmt.Errorf("taskcluster proxy: listening on %s, where containers reach the worker (plugins.taskclusterproxy.port): %w", addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: time.Minute}
	h.servers[ip] = srv
	go func() { _ = srv.Serve(l) }()
	return nil
}

// register adds run at addr; it reports whether addr is the run's alone.
func (h *hub) register(addr netip.Addr, run http.Handler) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.runs[addr] = append(h.runs[addr], run)
	close(h.changed)
	h.changed = make(chan struct{})
	return len(h.runs[addr]) == 1
}

func (h *hub) unregister(addr netip.Addr, run http.Handler) {
	h.mu.Lock()
	defer h.mu.Unlock()
	rs := slices.DeleteFunc(h.runs[addr], func(r http.Handler) bool { return r == run })
	if len(rs) == 0 {
		delete(h.runs, addr)
		return
	}
	h.runs[addr] = rs
}

// ServeHTTP hands the request to the run whose sandbox it comes from.
func (h *hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		proxyError(w, http.StatusForbidden, "Forbidden", "unknown client address "+r.RemoteAddr)
		return
	}
	from := ap.Addr().Unmap()
	deadline := time.NewTimer(h.wait)
	defer deadline.Stop()
	for {
		h.mu.Lock()
		runs := h.runs[from]
		changed := h.changed
		h.mu.Unlock()
		switch len(runs) {
		case 0:
		case 1:
			runs[0].ServeHTTP(w, r)
			return
		default:
			proxyError(w, http.StatusForbidden, "Forbidden", fmt.Sprintf("%d running tasks share the address %s (containers on the host's network): the proxy cannot tell which one asks", len(runs), from))
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			proxyError(w, http.StatusForbidden, "Forbidden", fmt.Sprintf("%s is not the address of a task with features.taskclusterProxy on this worker", from))
			return
		case <-r.Context().Done():
			return
		}
	}
}

// close stops every server.
func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ip, srv := range h.servers {
		_ = srv.Close()
		delete(h.servers, ip)
	}
}
