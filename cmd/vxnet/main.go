// Command vxnet is the vxnet Docker network plugin: `vxnet serve` runs the
// network and IPAM driver on one plugin socket; `vxnet host forget` releases
// a host gone for good; `vxnet status` shows the cluster and this host's
// drift from it; `vxnet dns config` prints dockerd's DNS setting; `vxnet
// version` prints the version.
package main

import (
	"fmt"
	"os"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) == 0 {
		usage()
		return 2
	}
	switch args[0] {
	case "serve":
		return serve(args[1:])
	case "host":
		return hostCmd(args[1:], os.Getenv, os.Stdout, os.Stderr)
	case "status":
		return statusCmd(args[1:], os.Getenv, os.Stdout, os.Stderr)
	case "simulate":
		return simulateCmd(args[1:], os.Stdout, os.Stderr)
	case "dns":
		return dnsCmd(args[1:], os.Stdout, os.Stderr)
	case "version", "--version":
		fmt.Println("vxnet", version)
		return 0
	case "help", "-h", "--help":
		usage()
		return 0
	}
	fmt.Fprintf(os.Stderr, "vxnet: unknown command %q\n", args[0])
	usage()
	return 2
}

func usage() {
	fmt.Fprint(os.Stderr, `usage: vxnet <command> [flags]

commands:
  serve     run the Docker network + IPAM plugin (vxnet serve --help for flags)
  host forget HOST
            release a host gone for good: its endpoints, network and pool
            memberships, and addresses (--store as for serve)
  status [network NAME|SUBNET] [--json]
            hosts, networks, endpoints from the store, and this host's
            kernel checked against it (exit 3 on drift)
  simulate --hosts 10,50 [--store consul://...]
            run many simulated hosts (the plugin's agent on a recording data
            plane) against a Consul cluster and measure propagation, store
            traffic, purge of switched-off hosts (make scale)
  dns config [--dns-addr ADDR] [--resolv-conf FILE]
            print the daemon.json "dns" setting that makes container names
            resolve across hosts
  version   print the version
`)
}
