package consul_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/consul"
	"github.com/vxnet/vxnet/store/storetest"
)

// testPrefix keeps the tests' keys apart from a real vxnet's on a shared
// Consul ($VXNET_TEST_CONSUL).
const testPrefix = "vxnet-test"

func open(t *testing.T, addr, prefix string) *consul.Store {
	t.Helper()
	s, err := consul.Open(t.Context(), "consul://"+addr+"/"+prefix)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestContract(t *testing.T) {
	addr := consulAddr(t)
	storetest.Run(t, func(t *testing.T) store.Store {
		return open(t, addr, testPrefix)
	})
}

// TestKeyPrefix: keys live under the URI's prefix in Consul, and stores
// with different prefixes do not see each other's keys.
func TestKeyPrefix(t *testing.T) {
	addr := consulAddr(t)
	ctx := t.Context()
	a, b := open(t, addr, testPrefix+"/a"), open(t, addr, testPrefix+"/b")
	defer func() {
		if err := errors.Join(a.Delete(ctx, "k"), a.Close(), b.Close()); err != nil {
			t.Error(err)
		}
	}()
	idx, err := a.Put(ctx, "k", []byte("v"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(ctx, "k"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("store with prefix b sees key of prefix a: %v", err)
	}
	kvs, _, err := a.List(ctx, "")
	if err != nil || len(kvs) != 1 || kvs[0].Key != "k" {
		t.Errorf("List(\"\") = %v, %v; want just \"k\"", kvs, err)
	}

	cfg := api.DefaultConfig()
	cfg.Address = addr
	client, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pair, _, err := client.KV().Get(testPrefix+"/a/k", (&api.QueryOptions{}).WithContext(ctx))
	if err != nil || pair == nil || string(pair.Value) != "v" || pair.ModifyIndex != idx {
		t.Errorf("consul key %q = %+v, %v; want v@%d", testPrefix+"/a/k", pair, err, idx)
	}
}

// TestOpenUnreachable: Open fails fast, naming the URI, when nothing
// listens.
func TestOpenUnreachable(t *testing.T) {
	uri := "consul://127.0.0.1:" + freePorts(t, 1)[0]
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	s, err := consul.Open(ctx, uri)
	if err == nil {
		t.Fatal(errors.Join(errors.New("Open of an unreachable Consul succeeded"), s.Close()))
	}
	if !strings.Contains(err.Error(), `"`+uri+`"`) {
		t.Errorf("error %q does not name %q", err, uri)
	}
}
