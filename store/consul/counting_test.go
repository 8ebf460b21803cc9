package consul_test

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vxnet/vxnet/store/consul"
	"github.com/vxnet/vxnet/store/consul/consultest"
)

// countingConsul is a proxy in front of a real Consul that counts the
// HTTP requests by method and path ("PUT /v1/session/renew"; the ID or
// key after the endpoint left out): what a Consul server answers.
type countingConsul struct {
	*consultest.Proxy
	mu   sync.Mutex
	n    map[string]int
	slow map[string]time.Duration // answers held back, by the same keys
}

func (c *countingConsul) serve(w http.ResponseWriter, r *http.Request) {
	key := r.Method + " " + endpointOf(r.URL.Path)
	c.mu.Lock()
	c.n[key]++
	delay := c.slow[key]
	c.mu.Unlock()
	c.Forward(w, r)
	time.Sleep(delay)
}

// hold holds back the answers of key ("PUT /v1/session/create") by d, as
// a loaded machine answers.
func (c *countingConsul) hold(key string, d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.slow == nil {
		c.slow = map[string]time.Duration{}
	}
	c.slow[key] = d
}

// endpointOf is path up to the endpoint: /v1/kv/a/b is /v1/kv,
// /v1/session/renew/<id> is /v1/session/renew.
func endpointOf(path string) string {
	parts := strings.SplitN(strings.TrimPrefix(path, "/"), "/", 4)
	if len(parts) > 1 && parts[1] == "kv" || len(parts) < 3 {
		return "/" + strings.Join(parts[:min(2, len(parts))], "/")
	}
	return "/" + strings.Join(parts[:3], "/")
}

// count returns the requests of key ("PUT /v1/txn") since the last reset.
func (c *countingConsul) count(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[key]
}

// total returns every request since the last reset.
func (c *countingConsul) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.n {
		n += v
	}
	return n
}

func (c *countingConsul) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n = map[string]int{}
}

// openCounting opens a store with prefix through a countingConsul in
// front of the test's Consul at addr; the proxy stops when the test ends.
func openCounting(t *testing.T, addr, prefix string) (*countingConsul, *consul.Store) {
	t.Helper()
	c := &countingConsul{n: map[string]int{}}
	c.Proxy = consultest.NewProxy(t, addr, c.serve)
	return c, open(t, c.Addr(), prefix)
}
