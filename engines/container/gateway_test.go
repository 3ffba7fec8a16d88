package container

import (
	"net/netip"
	"testing"

	"github.com/moby/moby/api/types/network"
)

// TestGatewayOf: the worker host's address on a network comes from the
// IPAM config's gateway, else a container's gateway, else the subnet's
// first address, IPv4 first; Docker 20.10's fresh default bridge states a
// subnet and no gateway.
func TestGatewayOf(t *testing.T) {
	a := netip.MustParseAddr
	p := netip.MustParsePrefix
	withContainer := map[string]network.EndpointResource{"c1": {}}
	cases := []struct {
		name       string
		cfg        []network.IPAMConfig
		containers map[string]network.EndpointResource
		container  netip.Addr
		want       netip.Addr
	}{
		{"ipam gateway", []network.IPAMConfig{{Subnet: p("10.88.0.0/16"), Gateway: a("10.88.0.1")}}, withContainer, a("10.88.0.9"), a("10.88.0.1")},
		{"ipv4 before ipv6", []network.IPAMConfig{{Subnet: p("fd00::/64"), Gateway: a("fd00::1")}, {Subnet: p("10.89.0.0/24"), Gateway: a("10.89.0.1")}}, nil, netip.Addr{}, a("10.89.0.1")},
		{"fresh docker bridge, container's gateway", []network.IPAMConfig{{Subnet: p("172.17.0.0/16")}}, withContainer, a("172.17.0.1"), a("172.17.0.1")},
		{"fresh docker bridge, no container", []network.IPAMConfig{{Subnet: p("172.17.0.0/16")}}, nil, netip.Addr{}, a("172.17.0.1")},
		{"container without gateway", []network.IPAMConfig{{Subnet: p("192.168.16.0/20")}}, withContainer, netip.Addr{}, a("192.168.16.1")},
		{"subnet not canonical", []network.IPAMConfig{{Subnet: p("172.18.5.7/16")}}, nil, netip.Addr{}, a("172.18.0.1")},
		{"nothing", nil, nil, netip.Addr{}, netip.Addr{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			nw := network.Inspect{Network: network.Network{IPAM: network.IPAM{Config: c.cfg}}, Containers: c.containers}
			asked := false
			got := gatewayOf(nw, func() netip.Addr { asked = true; return c.container })
			if got != c.want {
				t.Errorf("gatewayOf = %v, want %v", got, c.want)
			}
			if asked && len(c.containers) == 0 {
				t.Errorf("asked a container's gateway on a network without containers")
			}
		})
	}
}
