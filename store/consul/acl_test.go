package consul_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/vxnet/vxnet/store"
	"github.com/vxnet/vxnet/store/keys"
	"github.com/vxnet/vxnet/store/storetest"
)

// aclRules is the least a vxnet token needs with prefix "vxnet" (the
// README documents it): its keys, and a session for its heartbeat.
const aclRules = `key_prefix "%s/" { policy = "write" }
session_prefix "" { policy = "write" }`

// With ACLs on and default deny, a token from CONSUL_HTTP_TOKEN holding
// only aclRules passes the whole store contract; no token, a wrong token
// and a key outside the prefix fail at once with Consul's reason, and no
// error carries a token.
func TestACLToken(t *testing.T) {
	mgmt := rand.Text()
	addr := startConsul(t, consulBinary(t), "-hcl",
		fmt.Sprintf(`acl { enabled = true, default_policy = "deny", tokens { initial_management = %q } }`, mgmt))
	const prefix = "vxnet-acl"
	secret := aclToken(t, addr, mgmt, fmt.Sprintf(aclRules, prefix))
	wrong := rand.Text()

	checkErr := func(what string, err error, want string) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s: no error", what)
		}
		for _, tok := range []string{mgmt, secret, wrong} {
			if strings.Contains(err.Error(), tok) {
				t.Errorf("%s: error shows a token: %v", what, err)
			}
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %q does not say %q", what, err, want)
		}
	}
	for _, c := range []struct{ name, token, want string }{
		{"no token", "", "Permission denied"},
		{"wrong token", wrong, "ACL not found"},
	} {
		t.Setenv("CONSUL_HTTP_TOKEN", c.token)
		s := open(t, addr, prefix)
		start := time.Now()
		_, err := s.Put(t.Context(), "k", []byte("v"))
		checkErr(c.name, err, c.want)
		if took := time.Since(start); took > time.Second {
			t.Errorf("%s: refused write took %v: an ACL error must not be retried", c.name, took)
		}
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	}

	t.Setenv("CONSUL_HTTP_TOKEN", secret)
	outside := open(t, addr, "elsewhere")
	_, err := outside.Put(t.Context(), "k", []byte("v"))
	checkErr("key outside the token's prefix", err, "Permission denied")
	if err := outside.Close(); err != nil {
		t.Error(err)
	}
	storetest.Run(t, func(t *testing.T) store.Store { return open(t, addr, prefix) })
	s := open(t, addr, prefix)
	defer s.Close()
	ctx := context.Background()
	if err := s.PutEphemeral(ctx, keys.Heartbeat("h1"), []byte("1"), 10*time.Second); err != nil {
		t.Fatalf("heartbeat key with the token: %v", err)
	}
	if _, err := s.Get(ctx, keys.Heartbeat("h1")); err != nil {
		t.Fatal(err)
	}

	// A token that may not read part of the prefix: Consul filters the
	// listing and says so; vxnet must fail the listing, or a reconcile
	// would take the missing keys for gone.
	t.Setenv("CONSUL_HTTP_TOKEN", mgmt)
	admin := open(t, addr, prefix)
	defer admin.Close()
	if _, err := admin.Put(ctx, keys.HostNetwork("h1", "n1"), []byte("{}")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CONSUL_HTTP_TOKEN", aclToken(t, addr, mgmt, fmt.Sprintf(aclRules+`
key_prefix "%s/hosts/" { policy = "deny" }`, prefix, prefix)))
	partial := open(t, addr, prefix)
	defer partial.Close()
	for _, p := range []string{keys.Hosts, keys.HostNetworks("h1"), ""} {
		kvs, _, err := partial.List(ctx, p)
		checkErr(fmt.Sprintf("listing %q with keys filtered by ACLs (got %d keys)", p, len(kvs)), err, "ACL filtering")
	}
}

// aclToken creates a token with rules, using the management token, and
// returns its secret. The ACL system comes up shortly after the leader.
func aclToken(t *testing.T, addr, mgmt, rules string) string {
	t.Helper()
	cfg := api.DefaultConfig()
	cfg.Address, cfg.Scheme, cfg.Token = addr, "http", mgmt
	client, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var p *api.ACLPolicy
		p, _, err = client.ACL().PolicyCreate(&api.ACLPolicy{Name: "vxnet-" + rand.Text()[:8], Rules: rules}, nil)
		if err == nil {
			tok, _, err := client.ACL().TokenCreate(&api.ACLToken{Policies: []*api.ACLTokenPolicyLink{{ID: p.ID}}}, nil)
			if err != nil {
				t.Fatal(err)
			}
			return tok.SecretID
		}
		if time.Now().After(deadline) {
			t.Fatalf("create ACL policy: %v", errors.Join(err, errors.New("ACL system not ready after 30s")))
		}
		time.Sleep(200 * time.Millisecond)
	}
}
