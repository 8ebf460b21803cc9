package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/vxnet/vxnet/driver"
	"github.com/vxnet/vxnet/ipam"
	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/keys"
)

// hostCmd runs `vxnet host forget HOST`: the operator says a silent host is
// gone for good, so its records, memberships and addresses are released.
func hostCmd(args []string, getenv func(string) string, out, errOut io.Writer) int {
	if len(args) == 0 || args[0] != "forget" {
		fmt.Fprintln(errOut, "usage: vxnet host forget [--store URI] HOST")
		return 2
	}
	fs := flag.NewFlagSet("vxnet host forget", flag.ContinueOnError)
	fs.SetOutput(errOut)
	def := getenv("VXNET_STORE")
	if def == "" {
		def = "bolt:///var/lib/vxnet/vxnet.db"
	}
	uri := fs.String("store", def, "the cluster's store, as given to vxnet serve (default $VXNET_STORE)")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(errOut, "vxnet host forget: want exactly one host ID")
		return 2
	}
	host := fs.Arg(0)
	if err := validHostID(host); err != nil {
		fmt.Fprintln(errOut, "vxnet host forget:", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := openStore(ctx, *uri)
	if err != nil {
		fmt.Fprintln(errOut, "vxnet host forget:", err)
		return 1
	}
	defer st.Close()
	summary, err := forgetSilentHost(ctx, st, host)
	if err != nil {
		fmt.Fprintln(errOut, "vxnet host forget:", err)
		return 1
	}
	fmt.Fprintln(out, summary)
	return 0
}

// forgetSilentHost forgets host unless its heartbeat says it is alive.
func forgetSilentHost(ctx context.Context, st store.Store, host string) (string, error) {
	_, err := st.Get(ctx, keys.Heartbeat(host))
	if err == nil {
		return "", fmt.Errorf("host %q is alive: its heartbeat %s is there. Stop its plugin first, and wait for its heartbeat to go (up to 20 s on Consul)", host, keys.Heartbeat(host))
	}
	if !errors.Is(err, store.ErrNotFound) {
		return "", err
	}
	log := logrus.New()
	log.SetOutput(os.Stderr)
	ip := ipam.New(ipam.Options{Store: st, Log: logrus.NewEntry(log)})
	return forgetHost(ctx, st, ip, host)
}

// forgetHost releases everything of host in the cluster: its endpoints
// (every host drops their entries), its records and network memberships,
// then its addresses. It returns what it did, in words.
func forgetHost(ctx context.Context, st store.Store, ip *ipam.IPAM, host string) (string, error) {
	f, err := driver.ForgetHost(ctx, st, host)
	if err != nil {
		return "", err
	}
	leases, pools, err := ip.ForgetHost(ctx, host)
	if err != nil {
		return "", fmt.Errorf("forget host %q: %w", host, err)
	}
	return fmt.Sprintf("forgot host %s: %d endpoints, %d of its own records, %d network memberships (%d networks removed with it), %d addresses released, %d pools left",
		host, f.Endpoints, f.Records, f.Networks, f.Removed, leases, pools), nil
}
