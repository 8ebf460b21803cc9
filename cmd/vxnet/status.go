package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/vxnet/vxnet/driver/dataplane"
)

// statusDrift is the exit code of `vxnet status` when this host's kernel
// differs from the store; 1 is an error, 2 a usage error.
const statusDrift = 3

// statusFlags are `vxnet status`'s settings; like serve's, each may come
// from VXNET_<FLAG>, so the same environment serves both.
type statusFlags struct {
	Store      string
	NetnsDir   string
	HostID     string
	HostIDFile string
	JSON       bool
	DeadAfter  time.Duration
	Network    string // `status network NAME|SUBNET`
}

// statusCmd runs `vxnet status [flags]` and `vxnet status network
// NAME|SUBNET [flags]`: the cluster as the store has it, and this host's
// kernel against it.
func statusCmd(args []string, getenv func(string) string, out, errOut io.Writer) int {
	f, err := parseStatusFlags(args, getenv, errOut)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(errOut, "vxnet status:", err)
		return 2
	}
	if err := storeExists(f.Store); err != nil {
		fmt.Fprintln(errOut, "vxnet status:", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := openStore(ctx, f.Store)
	if err != nil {
		fmt.Fprintln(errOut, "vxnet status:", err)
		return 1
	}
	defer st.Close()
	s, err := readCluster(ctx, st, f.HostID, f.DeadAfter, time.Now())
	if err != nil {
		fmt.Fprintln(errOut, "vxnet status:", err)
		return 1
	}
	kernel, err := dataplane.Dump(f.NetnsDir)
	if err != nil {
		fmt.Fprintln(errOut, "vxnet status:", err)
		return 1
	}
	s.Drift = checkDrift(s, kernel)
	if f.Network != "" {
		if err := s.only(f.Network); err != nil {
			fmt.Fprintln(errOut, "vxnet status:", err)
			return 1
		}
	}
	if f.JSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		err = enc.Encode(s)
	} else {
		err = s.print(out)
	}
	if err != nil {
		fmt.Fprintln(errOut, "vxnet status:", err)
		return 1
	}
	if len(s.Drift) > 0 {
		return statusDrift
	}
	return 0
}

// storeExists refuses a bolt store whose file is missing: opening it would
// create an empty one, and status only reads.
func storeExists(uri string) error {
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "bolt" {
		return nil // openStore names the problem
	}
	if _, err := os.Stat(u.Path); err != nil {
		return fmt.Errorf("--store %q: %w", uri, err)
	}
	return nil
}

func parseStatusFlags(args []string, getenv func(string) string, errOut io.Writer) (*statusFlags, error) {
	f := &statusFlags{}
	if len(args) > 0 && args[0] == "network" {
		if len(args) < 2 || strings.HasPrefix(args[1], "-") {
			return nil, errors.New("usage: vxnet status network NAME|SUBNET [flags]")
		}
		f.Network, args = args[1], args[2:]
	}
	fs := flag.NewFlagSet("vxnet status", flag.ContinueOnError)
	fs.SetOutput(errOut)
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	fs.StringVar(&f.Store, "store", env("VXNET_STORE", "bolt:///var/lib/vxnet/vxnet.db"), "the cluster's store, as given to vxnet serve ($VXNET_STORE)")
	fs.StringVar(&f.NetnsDir, "netns-dir", env("VXNET_NETNS_DIR", "/run/vxnet/netns"), "where this host's network namespaces are ($VXNET_NETNS_DIR)")
	fs.StringVar(&f.HostID, "host-id", getenv("VXNET_HOST_ID"), "this host's ID (default: read from --host-id-file)")
	fs.StringVar(&f.HostIDFile, "host-id-file", env("VXNET_HOST_ID_FILE", "/var/lib/vxnet/host-id"), "where vxnet serve keeps the host ID (managed plugin: /var/lib/docker/plugins/<id>/propagated-mount/host-id)")
	fs.BoolVar(&f.JSON, "json", false, "print JSON (a stable structure) instead of tables")
	fs.DurationVar(&f.DeadAfter, "dead-after", 10*time.Second, "a heartbeat older than this is silent, as serve's --dead-after")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if f.HostID == "" {
		b, err := os.ReadFile(f.HostIDFile)
		if err != nil {
			return nil, fmt.Errorf("no --host-id, and the host ID file: %w", err)
		}
		f.HostID = strings.TrimSpace(string(b))
	}
	if err := validHostID(f.HostID); err != nil {
		return nil, fmt.Errorf("host ID: %w", err)
	}
	return f, nil
}
