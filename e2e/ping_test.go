package e2e

import (
	"fmt"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/vxnet/vxnet/e2e/harness"
)

var pingStats = regexp.MustCompile(`(\d+) packets transmitted, (\d+) packets received`)

// bgPing is a ping running in a container until stopped.
type bgPing struct {
	h         *harness.Host
	container string
	file      string // /tmp/<file>.log and .pid in the container
}

// startPing pings ip from container five times a second; tag tells apart
// several pings in one container.
func startPing(t *testing.T, h *harness.Host, container, ip, tag string) *bgPing {
	t.Helper()
	b := &bgPing{h: h, container: container, file: "/tmp/ping" + tag}
	h.MustDocker(t, "exec", container, "sh", "-c",
		fmt.Sprintf("ping -i 0.2 -W 1 %s > %s.log 2>&1 & echo $! > %s.pid", ip, b.file, b.file))
	return b
}

// pingResult is what a stopped background ping saw. Lost counts only
// packets a later packet overtook: sequence numbers never answered below
// the last one sent. The last packet may still be in flight when the
// ping is stopped (its reply racing the interrupt), so it is neither
// received nor lost.
type pingResult struct {
	Sent, Recv, Lost int
	Missing          []int // the lost sequence numbers, for the log
}

func (r pingResult) String() string {
	if r.Lost == 0 {
		return fmt.Sprintf("%d sent, %d received, none lost", r.Sent, r.Recv)
	}
	return fmt.Sprintf("%d sent, %d received, %d lost (seq %v)", r.Sent, r.Recv, r.Lost, r.Missing)
}

var pingReply = regexp.MustCompile(`(?m)^\d+ bytes from .*: seq=(\d+) `)

// parsePing reads busybox ping's output: the replies and the summary.
func parsePing(out string) (pingResult, error) {
	m := pingStats.FindStringSubmatch(out)
	if m == nil {
		return pingResult{}, fmt.Errorf("no ping statistics in: %.300s", out)
	}
	var r pingResult
	r.Sent, _ = strconv.Atoi(m[1])
	r.Recv, _ = strconv.Atoi(m[2])
	answered := map[int]bool{}
	for _, rm := range pingReply.FindAllStringSubmatch(out, -1) {
		seq, _ := strconv.Atoi(rm[1])
		answered[seq] = true
	}
	for seq := 0; seq < r.Sent-1; seq++ {
		if !answered[seq] {
			r.Lost++
			if len(r.Missing) < 20 {
				r.Missing = append(r.Missing, seq)
			}
		}
	}
	return r, nil
}

// stop ends the ping and returns what it saw.
func (b *bgPing) stop() (pingResult, error) {
	out, err := b.h.Docker("exec", b.container, "sh", "-c", fmt.Sprintf("kill -INT $(cat %s.pid); sleep 1; cat %s.log", b.file, b.file))
	if err != nil {
		return pingResult{}, err
	}
	r, err := parsePing(out)
	if err != nil {
		return r, fmt.Errorf("ping in %s: %w", b.container, err)
	}
	return r, nil
}

// pingAcross pings ip from container count times, five a second, runs
// interrupt two seconds in, and fails the test unless every packet was
// answered: what interrupt does (named by what) must not touch traffic.
func pingAcross(t *testing.T, h *harness.Host, container, ip string, count int, what string, interrupt func()) {
	t.Helper()
	var wg sync.WaitGroup
	var out string
	var err error
	wg.Add(1)
	go func() {
		defer wg.Done()
		out, err = h.Docker("exec", container, "ping", "-c", strconv.Itoa(count), "-i", "0.2", "-W", "1", ip)
	}()
	time.Sleep(2 * time.Second)
	interrupt()
	wg.Wait()
	m := pingStats.FindStringSubmatch(out)
	if err != nil || m == nil || m[1] != m[2] || m[1] != strconv.Itoa(count) {
		t.Fatalf("traffic interrupted across %s (%v):\n%s", what, err, out)
	}
}
