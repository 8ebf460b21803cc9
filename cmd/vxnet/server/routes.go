package server

import (
	"context"

	ipamapi "github.com/docker/go-plugins-helpers/ipam"
	"github.com/docker/go-plugins-helpers/network"
)

// NetworkDriver is the go-plugins-helpers network.Driver with a context on
// every call, so the store and the kernel work stop at the deadline.
type NetworkDriver interface {
	GetCapabilities(context.Context) (*network.CapabilitiesResponse, error)
	CreateNetwork(context.Context, *network.CreateNetworkRequest) error
	AllocateNetwork(context.Context, *network.AllocateNetworkRequest) (*network.AllocateNetworkResponse, error)
	DeleteNetwork(context.Context, *network.DeleteNetworkRequest) error
	FreeNetwork(context.Context, *network.FreeNetworkRequest) error
	CreateEndpoint(context.Context, *network.CreateEndpointRequest) (*network.CreateEndpointResponse, error)
	DeleteEndpoint(context.Context, *network.DeleteEndpointRequest) error
	EndpointInfo(context.Context, *network.InfoRequest) (*network.InfoResponse, error)
	Join(context.Context, *network.JoinRequest) (*network.JoinResponse, error)
	Leave(context.Context, *network.LeaveRequest) error
	DiscoverNew(context.Context, *network.DiscoveryNotification) error
	DiscoverDelete(context.Context, *network.DiscoveryNotification) error
	ProgramExternalConnectivity(context.Context, *network.ProgramExternalConnectivityRequest) error
	RevokeExternalConnectivity(context.Context, *network.RevokeExternalConnectivityRequest) error
}

// IPAMDriver is the go-plugins-helpers ipam.Ipam with a context.
type IPAMDriver interface {
	GetCapabilities(context.Context) (*ipamapi.CapabilitiesResponse, error)
	GetDefaultAddressSpaces(context.Context) (*ipamapi.AddressSpacesResponse, error)
	RequestPool(context.Context, *ipamapi.RequestPoolRequest) (*ipamapi.RequestPoolResponse, error)
	ReleasePool(context.Context, *ipamapi.ReleasePoolRequest) error
	RequestAddress(context.Context, *ipamapi.RequestAddressRequest) (*ipamapi.RequestAddressResponse, error)
	ReleaseAddress(context.Context, *ipamapi.ReleaseAddressRequest) error
}

// empty is the success answer of calls that return nothing.
type empty struct{}

// noArgs adapts an argument-less call.
func noArgs[Resp any](fn func(context.Context) (Resp, error)) func(context.Context, *empty) (Resp, error) {
	return func(ctx context.Context, _ *empty) (Resp, error) { return fn(ctx) }
}

// errOnly adapts a call that answers only with an error.
func errOnly[Req any](fn func(context.Context, *Req) error) func(context.Context, *Req) (*empty, error) {
	return func(ctx context.Context, r *Req) (*empty, error) { return &empty{}, fn(ctx, r) }
}

// Paths are Docker's: libnetwork drivers/remote/api and ipams/remote/api.
func registerNetwork(s *Server, d NetworkDriver) {
	handle(s, "/NetworkDriver.GetCapabilities", noArgs(d.GetCapabilities))
	handle(s, "/NetworkDriver.CreateNetwork", errOnly(d.CreateNetwork))
	handle(s, "/NetworkDriver.AllocateNetwork", d.AllocateNetwork)
	handle(s, "/NetworkDriver.DeleteNetwork", errOnly(d.DeleteNetwork))
	handle(s, "/NetworkDriver.FreeNetwork", errOnly(d.FreeNetwork))
	handle(s, "/NetworkDriver.CreateEndpoint", d.CreateEndpoint)
	handle(s, "/NetworkDriver.DeleteEndpoint", errOnly(d.DeleteEndpoint))
	handle(s, "/NetworkDriver.EndpointOperInfo", d.EndpointInfo)
	handle(s, "/NetworkDriver.Join", d.Join)
	handle(s, "/NetworkDriver.Leave", errOnly(d.Leave))
	handle(s, "/NetworkDriver.DiscoverNew", errOnly(d.DiscoverNew))
	handle(s, "/NetworkDriver.DiscoverDelete", errOnly(d.DiscoverDelete))
	handle(s, "/NetworkDriver.ProgramExternalConnectivity", errOnly(d.ProgramExternalConnectivity))
	handle(s, "/NetworkDriver.RevokeExternalConnectivity", errOnly(d.RevokeExternalConnectivity))
}

func registerIPAM(s *Server, d IPAMDriver) {
	handle(s, "/IpamDriver.GetCapabilities", noArgs(d.GetCapabilities))
	handle(s, "/IpamDriver.GetDefaultAddressSpaces", noArgs(d.GetDefaultAddressSpaces))
	handle(s, "/IpamDriver.RequestPool", d.RequestPool)
	handle(s, "/IpamDriver.ReleasePool", errOnly(d.ReleasePool))
	handle(s, "/IpamDriver.RequestAddress", d.RequestAddress)
	handle(s, "/IpamDriver.ReleaseAddress", errOnly(d.ReleaseAddress))
}
