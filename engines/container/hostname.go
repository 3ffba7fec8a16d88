package container

import (
	"context"
	"fmt"
	"net/netip"
	"sort"

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
// on the containers' network, the gateway of the configured network
// ("bridge" by default, which Podman's API maps to its default network), or
// 127.0.0.1 with network "host".
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
	for _, c := range res.Network.IPAM.Config {
		if c.Gateway.Is4() {
			return c.Gateway, nil
		}
	}
	for _, c := range res.Network.IPAM.Config {
		if c.Gateway.IsValid() {
			return c.Gateway, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("network %q has no gateway: %w", name, engines.ErrNoHostNetwork)
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
