package consul_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/consul/consultest"
)

// oldConsul answers 413 to a transaction of more than store.MaxTxnOps
// operations, as Consul did before 1.14.
type oldConsul struct {
	*consultest.Proxy
	refused atomic.Int32
}

func (o *oldConsul) serve(w http.ResponseWriter, r *http.Request) {
	if consultest.Kind(r) == consultest.Txn {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		var ops []json.RawMessage
		if json.Unmarshal(body, &ops) == nil && len(ops) > store.MaxTxnOps {
			o.refused.Add(1)
			msg := fmt.Sprintf("Transaction contains too many operations (%d > %d)", len(ops), store.MaxTxnOps)
			http.Error(w, msg, http.StatusRequestEntityTooLarge) // as Consul's agent/txn_endpoint.go
			return
		}
	}
	o.Forward(w, r)
}

// On a Consul older than 1.14 ReadMany and ReadRound take its 413 to
// their first transaction, and read in chunks it takes.
func TestOldConsulChunks(t *testing.T) {
	o := &oldConsul{}
	o.Proxy = consultest.NewProxy(t, consulAddr(t), o.serve)
	s := open(t, o.Addr(), testPrefix+"/old-consul")
	ctx := t.Context()
	known := map[string]uint64{}
	var ks []string
	for i := range 100 {
		k := fmt.Sprintf("k/%03d", i)
		index, err := s.Put(ctx, k, []byte(k))
		if err != nil {
			t.Fatal(err)
		}
		ks, known[k] = append(ks, k), index
	}
	_, got, err := s.ReadMany(ctx, nil, ks)
	if err != nil || len(got) != len(ks) {
		t.Fatalf("ReadMany of %d keys: %d read, %v", len(ks), len(got), err)
	}
	lists, changed, err := s.ReadRound(ctx, []string{"k/"}, known)
	if err != nil || len(changed) != 0 || len(lists["k/"]) != len(ks) {
		t.Fatalf("ReadRound of %d keys: %d changed, %d listed, %v", len(ks), len(changed), len(lists["k/"]), err)
	}
	if n := o.refused.Load(); n != 1 {
		t.Errorf("%d transactions refused, want 1 (the first, then chunks it takes)", n)
	}
}
