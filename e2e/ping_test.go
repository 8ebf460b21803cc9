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

// stop ends the ping and returns packets sent and received.
func (b *bgPing) stop() (sent, recv int, err error) {
	out, err := b.h.Docker("exec", b.container, "sh", "-c", fmt.Sprintf("kill -INT $(cat %s.pid); sleep 1; cat %s.log", b.file, b.file))
	if err != nil {
		return 0, 0, err
	}
	m := pingStats.FindStringSubmatch(out)
	if m == nil {
		return 0, 0, fmt.Errorf("no ping statistics in %s: %.300s", b.container, out)
	}
	sent, _ = strconv.Atoi(m[1])
	recv, _ = strconv.Atoi(m[2])
	return sent, recv, nil
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
