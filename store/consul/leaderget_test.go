package consul_test

import (
	"context"
	"reflect"
	"testing"

	"github.com/vxnet/vxnet/store"
)

// GetManyLeader answers as GetMany does (default mode differs from the
// consistent read only during a change of leader): the keys that exist,
// by key, absent ones left out.
func TestGetManyLeader(t *testing.T) {
	s := open(t, consulAddr(t), testPrefix+"-leaderget")
	t.Cleanup(func() { s.Close() })
	ctx := context.Background()
	ks := []string{"changes/a", "changes/b"}
	for _, k := range ks {
		if _, err := s.Put(ctx, k, []byte(`{"seq":1}`)); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Delete(context.Background(), k) })
	}
	ask := append(ks, "changes/absent")
	want, err := s.GetMany(ctx, ask)
	if err != nil {
		t.Fatal(err)
	}
	got, err := store.GetManyLeader(ctx, s, ask)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !reflect.DeepEqual(got, want) {
		t.Errorf("GetManyLeader(%v) = %v; want %v as GetMany", ask, got, want)
	}
}
