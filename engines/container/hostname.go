package container

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sort"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/workergen/workergen/engines"
)

var (
	_ engines.HostNameBuilder  = (*builder)(nil)
	_ engines.HostAddresser    = (*Engine)(nil)
	_ engines.AddressedSandbox = (*sandbox)(nil)
)

// AddHostName implements engines.HostNameBuilder: name resolves in the
// container (an /etc/hosts entry) to the gateway of the container's network
// on the worker host, or to 127.0.0.1 with network "host".
func (b *builder) AddHostName(ctx context.Context, name string) (netip.Addr, error) {
	ip, err := b.e.HostAddress(ctx)
	if err != nil {
		return netip.Addr{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.hosts = append(b.hosts, name+":"+ip.String())
	return ip, nil
}

// HostAddress implements engines.HostAddresser: the worker host's address
// on the containers' network (the configured network, "bridge" by default,
// which Podman's API maps to its default network), or 127.0.0.1 with
// network "host". The address is the network's gateway, taken from
//
//  1. the network's IPAM config (IPv4 first), else
//  2. the gateway a container on the network was given, else
//  3. the first address of the network's subnet (IPv4 first).
//
// Docker 20.10 started with no docker0 interface yet leaves the gateway out
// of its default bridge's IPAM config, though docker0 gets the subnet's
// first address; Podman and user-defined Docker networks state it.
func (e *Engine) HostAddress(ctx context.Context) (netip.Addr, error) {
	switch e.cfg.Network {
	case "host":
		return netip.AddrFrom4([4]byte{127, 0, 0, 1}), nil
	case "none":
		return netip.Addr{}, fmt.Errorf("engine.network is %q: %w", e.cfg.Network, engines.ErrNoHostNetwork)
	}
	name := e.cfg.Network
	if name == "" || name == "default" {
		name = "bridge"
	}
	res, err := e.cli.NetworkInspect(ctx, name, client.NetworkInspectOptions{})
	if err != nil {
		return netip.Addr{}, fmt.Errorf("inspecting network %q for the worker host's address: %w", name, err)
	}
	ip := gatewayOf(res.Network, func() netip.Addr { return e.containerGateway(ctx, res.Network) })
	if !ip.IsValid() {
		return netip.Addr{}, fmt.Errorf("network %q has no gateway, no container on it with one, and no subnet: %w", name, engines.ErrNoHostNetwork)
	}
	return ip, nil
}

// gatewayOf picks the worker host's address on nw: the IPAM config's
// gateway, else containerGateway(), else the subnet's first address; IPv4
// before IPv6 at each step. The zero Addr means none.
func gatewayOf(nw network.Inspect, containerGateway func() netip.Addr) netip.Addr {
	cfgs := slices.Clone(nw.IPAM.Config)
	// IPv4 first, keeping the daemon's order otherwise.
	slices.SortStableFunc(cfgs, func(a, b network.IPAMConfig) int {
		return cmpBool(!a.Subnet.Addr().Is4() && !a.Gateway.Is4(), !b.Subnet.Addr().Is4() && !b.Gateway.Is4())
	})
	for _, c := range cfgs {
		if c.Gateway.IsValid() {
			return c.Gateway
		}
	}
	if len(nw.Containers) > 0 {
		if ip := containerGateway(); ip.IsValid() {
			return ip
		}
	}
	for _, c := range cfgs {
		if p := c.Subnet.Masked(); p.IsValid() && p.Bits() < p.Addr().BitLen() {
			return p.Addr().Next()
		}
	}
	return netip.Addr{}
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// containerGateway returns the gateway the daemon gave one of the
// containers on nw (sorted by ID; IPv4 first), or the zero Addr.
func (e *Engine) containerGateway(ctx context.Context, nw network.Inspect) netip.Addr {
	ids := slices.Sorted(maps.Keys(nw.Containers))
	for _, id := range ids {
		in, err := e.cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
		if err != nil || in.Container.NetworkSettings == nil {
			continue
		}
		for key, ep := range in.Container.NetworkSettings.Networks {
			if ep == nil || key != nw.Name && ep.NetworkID != nw.ID {
				continue
			}
			if ep.Gateway.IsValid() {
				return ep.Gateway
			}
			if ep.IPv6Gateway.IsValid() {
				return ep.IPv6Gateway
			}
		}
	}
	return netip.Addr{}
}

// ensureNetwork creates the configured network when it is a name (not
// "bridge", "host", "none", "default" or "container:<id>") the daemon does
// not know: a bridge network with the daemon's next free subnet, labelled
// as the engine's (LabelManaged and the worker's labels), kept after the
// worker stops. Workers of one host given networks of their own each have
// their own gateway, where each serves the taskcluster proxy on port 80.
func (e *Engine) ensureNetwork(ctx context.Context) error {
	name := e.cfg.Network
	switch {
	case name == "", name == "bridge", name == "host", name == "none", name == "default", strings.Contains(name, ":"):
		return nil
	}
	_, err := e.cli.NetworkInspect(ctx, name, client.NetworkInspectOptions{})
	if err == nil {
		return nil
	}
	if !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("engine config: network %q: inspecting it: %w", name, err)
	}
	if _, err := e.cli.NetworkCreate(ctx, name, client.NetworkCreateOptions{Driver: "bridge", Labels: e.baseLabels()}); err != nil && !cerrdefs.IsConflict(err) {
		return fmt.Errorf("engine config: network %q: the daemon does not have it and creating it failed: %w", name, err)
	}
	e.log.Info("created container network", "network", name)
	return nil
}

// Address implements engines.AddressedSandbox: the container's address on
// its network (127.0.0.1 with network "host").
func (s *sandbox) Address(ctx context.Context) (netip.Addr, error) {
	if s.e.cfg.Network == "host" {
		return netip.AddrFrom4([4]byte{127, 0, 0, 1}), nil
	}
	in, err := s.e.cli.ContainerInspect(ctx, s.id, client.ContainerInspectOptions{})
	if err != nil {
		return netip.Addr{}, fmt.Errorf("inspecting container for its address: %w", err)
	}
	if ns := in.Container.NetworkSettings; ns != nil {
		names := make([]string, 0, len(ns.Networks))
		for n := range ns.Networks {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			if ep := ns.Networks[n]; ep != nil && ep.IPAddress.IsValid() {
				return ep.IPAddress, nil
			}
		}
	}
	return netip.Addr{}, fmt.Errorf("container %s has no network address: %w", shortID(s.id), engines.ErrNoHostNetwork)
}
