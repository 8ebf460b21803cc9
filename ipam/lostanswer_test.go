package ipam

import (
	"net/http"
	"sync"
	"testing"
	"time"

	ipamapi "github.com/docker/go-plugins-helpers/ipam"

	"github.com/vxnet/vxnet/store/consul/consultest"
)

// losingProxy stands in front of a real Consul like an agent during a
// leader election. Once armed with n, it holds the next n transactions
// until all n have arrived, then sends them to Consul one by one and
// answers each with a 500: the first is applied, the others are rolled
// back, and no caller learns which was which.
type losingProxy struct {
	*consultest.Proxy
	mu   sync.Mutex
	left int           // transactions still to catch
	all  chan struct{} // closed when the last of them arrived
	one  sync.Mutex    // sends the caught ones one by one
}

func (p *losingProxy) arm(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.left, p.all = n, make(chan struct{})
}

func (p *losingProxy) serve(w http.ResponseWriter, r *http.Request) {
	if consultest.Kind(r) != consultest.Txn {
		p.Forward(w, r)
		return
	}
	p.mu.Lock()
	caught, all := p.left > 0, p.all
	if caught {
		if p.left--; p.left == 0 {
			close(all)
		}
	}
	p.mu.Unlock()
	if !caught {
		p.Forward(w, r)
		return
	}
	select {
	case <-all:
	case <-time.After(10 * time.Second): // the other never came: do not hang the test
	}
	p.one.Lock()
	p.Lose(r)
	p.one.Unlock()
	http.Error(w, "rpc error making call: EOF", http.StatusInternalServerError)
}

// TestLostAnswerNeverDoublesAnAddress: two RequestAddress calls of one
// host race for the same candidate while Consul loses both answers. Both
// retries find the lease there; only the call whose nonce it holds may
// take it as its own, the other moves on to another address.
func TestLostAnswerNeverDoublesAnAddress(t *testing.T) {
	lp := &losingProxy{}
	lp.Proxy = consultest.NewProxy(t, consultest.Addr(t), lp.serve)
	s := openConsul(t, lp.Addr(), "vxnet-ipam-test/"+randomHex(t))
	m := New(Options{Store: s, HostID: "h1"})
	id := requestNetwork(t, m, ipamapi.RequestPoolRequest{Pool: "198.19.70.0/24"})
	for round := range 10 {
		lp.arm(2)
		var got [2]string
		var errs [2]error
		var wg sync.WaitGroup
		for i := range got {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got[i], errs[i] = request(m, id, "", nil)
			}()
		}
		wg.Wait()
		if errs[0] != nil || errs[1] != nil {
			t.Fatalf("round %d: %v / %v", round, errs[0], errs[1])
		}
		if got[0] == got[1] {
			t.Fatalf("round %d: address %s handed out twice", round, got[0])
		}
		for _, a := range got {
			release(t, m, id, mustPrefix(t, a).Addr().String())
		}
	}
	releasePool(t, m, id)
	requireEmpty(t, s)
}
