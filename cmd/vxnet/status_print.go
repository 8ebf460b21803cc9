package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// print writes the status as aligned tables for people.
func (s *Status) print(out io.Writer) error {
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "HOST\tSTATE\tLAST HEARTBEAT\tVTEPS\tNETWORKS\tENDPOINTS")
	for _, h := range s.Hosts {
		beat := "never"
		if h.LastHeartbeat != nil {
			beat = h.LastHeartbeat.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%d\n", h.ID, h.State, beat, orDash(strings.Join(h.VTEPs, ",")), h.Networks, h.Endpoints)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, s.monitorsLine())
	fmt.Fprintln(w)
	fmt.Fprintln(w, "NETWORK\tVNI\tSUBNETS\tHOSTS\tENDPOINTS")
	for _, n := range s.Networks {
		hosts := sortedKeys(n.Hosts)
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%d\n", n.Key, n.VNI, strings.Join(n.Subnets, ","), strings.Join(hosts, ","), n.Endpoints)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "ENDPOINT\tNETWORK\tHOST\tADDRESSES\tMAC\tCONTAINER")
	eps := slices.Clone(s.Endpoints)
	slices.SortFunc(eps, func(a, b EndpointStatus) int {
		return strings.Compare(a.Network+a.Host+a.ID, b.Network+b.Host+b.ID)
	})
	for _, ep := range eps {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", ep.ID, ep.Network, ep.Host, strings.Join(ep.Addrs, ","), ep.MAC, orDash(ep.Container))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(out)
	if len(s.Drift) == 0 {
		fmt.Fprintf(out, "drift on host %s: none (namespaces, links, bridge ports, FDB and neighbour entries match the store)\n", s.Host)
	} else {
		noun := "differences"
		if len(s.Drift) == 1 {
			noun = "difference"
		}
		fmt.Fprintf(out, "drift on host %s: %d %s between the kernel and the store\n", s.Host, len(s.Drift), noun)
		for _, d := range s.Drift {
			fmt.Fprintln(out, "  "+d)
		}
	}
	for _, n := range s.Notes {
		fmt.Fprintln(out, "note: "+n)
	}
	return nil
}

// orDash shows an unknown value as "-".
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// monitorsLine names the hosts holding the liveness monitor slots.
func (s *Status) monitorsLine() string {
	if len(s.Monitors) == 0 {
		return "liveness monitors: none (every plugin reads the heartbeats itself)"
	}
	var ms []string
	for _, m := range s.Monitors {
		state := ""
		if !m.Healthy {
			state = ", not healthy"
		}
		ms = append(ms, fmt.Sprintf("%s (%s%s)", m.Host, m.Slot, state))
	}
	return "liveness monitors: " + strings.Join(ms, ", ")
}
