package e2e

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vxnet/vxnet/e2e/harness"
)

type concurrencyReport struct {
	Hosts       int      `json:"hosts"`
	RunsPerHost int      `json:"runs_per_host"`
	Started     int      `json:"started"`
	Errors      []string `json:"errors"`
	Distinct    int      `json:"distinct_addresses"`
	Duplicates  int      `json:"duplicate_addresses"`
	Reachable   int      `json:"reachable"`
	RunsSeconds float64  `json:"all_runs_seconds"`
	PingSeconds float64  `json:"ping_all_seconds"`
	LeakSeconds float64  `json:"converged_seconds"`
}

func (r *concurrencyReport) String() string {
	return fmt.Sprintf("4. concurrency: %d hosts × %d parallel docker run: %d started, %d errors, %d distinct addresses, %d duplicates, %d reachable from another host; runs took %.1fs",
		r.Hosts, r.RunsPerHost, r.Started, len(r.Errors), r.Distinct, r.Duplicates, r.Reachable, r.RunsSeconds)
}

// runParallel starts n containers per host at once, all on network, and
// returns the names started per host and the errors.
func runParallel(hosts []*harness.Host, n int, prefix, network string) (map[*harness.Host][]string, []string) {
	var (
		mu   sync.Mutex
		ok   = map[*harness.Host][]string{}
		errs []string
		wg   sync.WaitGroup
	)
	for _, h := range hosts {
		for i := range n {
			name := fmt.Sprintf("%s%d-%02d", prefix, h.Index, i)
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := h.Docker(append([]string{"run", "-d", "--name", name, "--network", network}, sleeper...)...)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, fmt.Sprintf("%s: %v", h.Name, err))
					return
				}
				ok[h] = append(ok[h], name)
			}()
		}
	}
	wg.Wait()
	sort.Strings(errs)
	return ok, errs
}

// addresses returns name → address on network of the given containers of
// one host (one docker inspect).
func addresses(h *harness.Host, network string, names []string) (map[string]string, error) {
	out := map[string]string{}
	if len(names) == 0 {
		return out, nil
	}
	res, err := h.Docker(append([]string{"inspect", "-f",
		fmt.Sprintf("{{.Name}} {{with index .NetworkSettings.Networks %q}}{{.IPAddress}}{{end}}", network)}, names...)...)
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(res, "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			return nil, fmt.Errorf("%s: inspect: %q", h.Name, line)
		}
		out[strings.TrimPrefix(f[0], "/")] = f[1]
	}
	return out, nil
}

// pingAll pings every address from container from on host h (up to five
// one-second tries each) and returns the unreachable ones.
func pingAll(h *harness.Host, from string, ips []string) ([]string, error) {
	if len(ips) == 0 {
		return nil, nil
	}
	script := `for ip in "$@"; do ok=; for i in 1 2 3 4 5; do if ping -c1 -W1 $ip >/dev/null 2>&1; then ok=1; break; fi; done; [ -n "$ok" ] || echo $ip; done`
	out, err := h.Docker(append([]string{"exec", from, "sh", "-c", script, "sh"}, ips...)...)
	if err != nil {
		return nil, err
	}
	return strings.Fields(out), nil
}

// testFaultConcurrency: hosts × RunsPerHost `docker run -d` at once on one
// network get distinct addresses, and every container answers a ping from
// a container on another host.
func testFaultConcurrency(t *testing.T, f *faults) {
	const network, subnet = "conc", "198.19.10.0/24"
	r := &concurrencyReport{Hosts: len(f.c.Hosts), RunsPerHost: f.cfg.RunsPerHost, Errors: []string{}}
	f.mu.Lock()
	f.report.Concurrency = r
	f.mu.Unlock()
	// One pinger per host, started before the burst.
	f.containerPerHost(t, network, subnet, "cping")

	start := time.Now()
	names, errs := runParallel(f.c.Hosts, f.cfg.RunsPerHost, "c", network)
	r.RunsSeconds = secs(time.Since(start))
	r.Errors = append(r.Errors, errs...)
	for _, e := range errs {
		t.Error(e)
	}
	owner := map[string]string{}
	ipsByHost := map[*harness.Host][]string{}
	sub := netip.MustParsePrefix(subnet)
	for _, h := range f.c.Hosts {
		r.Started += len(names[h])
		addrs, err := addresses(h, network, names[h])
		if err != nil {
			t.Fatal(err)
		}
		for name, ip := range addrs {
			if a, err := netip.ParseAddr(ip); err != nil || !sub.Contains(a) {
				t.Errorf("%s on %s has address %q, not in %s", name, h.Name, ip, sub)
				continue
			}
			if prev, dup := owner[ip]; dup {
				r.Duplicates++
				t.Errorf("%s on %s and %s both have %s", name, h.Name, prev, ip)
				continue
			}
			owner[ip] = name + "@" + h.Name
			ipsByHost[h] = append(ipsByHost[h], ip)
		}
	}
	r.Distinct = len(owner)
	start = time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i, h := range f.c.Hosts {
		from := f.c.Hosts[(i+1)%len(f.c.Hosts)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			bad, err := pingAll(from, fmt.Sprintf("cping%d", from.Index), ipsByHost[h])
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				t.Errorf("ping from %s: %v", from.Name, err)
				return
			}
			r.Reachable += len(ipsByHost[h]) - len(bad)
			if len(bad) > 0 {
				t.Errorf("from %s, unreachable on %s: %v", from.Name, h.Name, bad)
			}
		}()
	}
	wg.Wait()
	r.PingSeconds = secs(time.Since(start))
	if want := len(f.c.Hosts) * f.cfg.RunsPerHost; r.Distinct != want || r.Reachable != want {
		t.Errorf("%d distinct addresses, %d reachable; want %d", r.Distinct, r.Reachable, want)
	}
	t.Log(r)
	f.eachHost(t, func(h *harness.Host) error { return removeAll(h) })
	r.LeakSeconds = secs(f.leakCheck(t, 20*time.Second))
}
