// Package consul is the multi-host store.Store backend: Consul's KV store.
//
// Design note: every store key lives under one key prefix in Consul (from
// the URI, default "vxnet"), so a Consul shared with other tools only sees
// vxnet below it. ModifyIndex is Consul's Raft index, which only grows, so
// CAS works across hosts. Writes go through /v1/txn, the one write endpoint
// that returns the new ModifyIndex; DeleteCAS checks the index and deletes
// in one transaction, because Consul's own delete-cas succeeds on a missing
// key and the store contract wants a conflict there.
//
// Reads are consistent (the leader confirms with a quorum that it still
// leads before answering): a leader elected after the whole cluster
// restarted answers default-mode reads from a state machine that has not
// replayed the log yet, and a listing without the endpoints written just
// before the outage made every host drop their FDB entries.
//
// List returns Consul's X-Consul-Index for the prefix (the largest index of
// a key or tombstone under it); Watch is a blocking List from that index,
// repeated until the index moves or ctx ends. If the index goes backwards
// (tombstones reaped, snapshot restored) Watch returns at once, which resets
// the caller, as Consul's blocking-query documentation asks.
//
// Every HTTP call runs under the caller's ctx, a per-call timeout and the
// store's lifetime, so neither a slow Consul nor Close leaves a call hanging.
// The client comes from api.DefaultConfig, so CONSUL_HTTP_TOKEN,
// CONSUL_HTTP_SSL, CONSUL_CACERT, CONSUL_CLIENT_CERT/KEY and the other
// CONSUL_* variables apply; the address comes from the URI.
package consul

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/vxnet/vxnet/store"
)

const (
	// DefaultPrefix is the Consul key prefix when the URI has no path.
	DefaultPrefix = "vxnet"
	// defaultPort is Consul's HTTP port, used when the URI has none.
	defaultPort = "8500"
	// callTimeout bounds one attempt of a call, one HTTP request (a
	// blocking one: on top of its wait); retry.go bounds the call.
	callTimeout = 4 * time.Second
	// watchWait is how long one blocking query waits in Consul.
	watchWait = 30 * time.Second
)

var errClosed = errors.New("store is closed")

var _ store.Store = (*Store)(nil)

// Store is a store.Store in Consul. It is safe for concurrent use.
type Store struct {
	kv        *api.KV
	txn       *api.Txn
	sessions  *api.Session
	sess      session // held by ephemeral keys
	transport *http.Transport
	addr      string        // host:port, for errors
	attempt   time.Duration // one HTTP request's time: callTimeout
	prefix    string        // Consul key prefix, without trailing slash

	life  context.Context // cancelled by Close
	close context.CancelFunc

	// failingSince is when calls started failing with retryable errors
	// (UnixNano), 0 while the last call succeeded (retry.go).
	failingSince atomic.Int64
	// smallTxn: Consul refused a ReadRound transaction of roundOps
	// operations (before 1.14); it takes store.MaxTxnOps (round.go).
	smallTxn atomic.Bool
	// staleFallbacks counts the answers WatchStale dropped for the
	// leader's (store.StaleFallbacks).
	staleFallbacks atomic.Uint64
	// staleGetFallbacks counts the chunks GetManyStale read again from
	// the leader (store.StaleGetFallbacks).
	staleGetFallbacks atomic.Uint64
}

// Open connects to the Consul agent named by uri,
// consul://host[:port][/key/prefix], and checks that it has a leader.
func Open(ctx context.Context, uri string) (*Store, error) {
	addr, prefix, err := parseURI(uri)
	if err != nil {
		return nil, err
	}
	cfg := api.DefaultConfig()
	cfg.Address = addr
	client, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("open consul %q: %w", uri, err)
	}
	life, cancel := context.WithCancel(context.Background())
	s := &Store{
		kv:        client.KV(),
		txn:       client.Txn(),
		sessions:  client.Session(),
		transport: cfg.Transport,
		addr:      addr,
		attempt:   callTimeout,
		prefix:    prefix,
		life:      life,
		close:     cancel,
	}
	cctx, done := s.callCtx(ctx, callTimeout)
	defer done()
	leader, err := client.Status().LeaderWithQueryOptions((&api.QueryOptions{}).WithContext(cctx))
	if err == nil && leader == "" {
		err = errors.New("no cluster leader")
	}
	if err != nil {
		return nil, errors.Join(s.fail(ctx, "open", uri, err), s.Close())
	}
	return s, nil
}

// parseURI splits consul://host[:port][/prefix] into host:port and prefix.
func parseURI(uri string) (addr, prefix string, err error) {
	u, err := url.Parse(uri)
	if err != nil {
		return "", "", fmt.Errorf("consul uri %q: %w", uri, err)
	}
	switch {
	case u.Scheme != "consul":
		return "", "", fmt.Errorf("consul uri %q: scheme must be consul://", uri)
	case u.Hostname() == "":
		return "", "", fmt.Errorf("consul uri %q: no host", uri)
	case u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "":
		return "", "", fmt.Errorf("consul uri %q: only consul://host[:port][/key/prefix] is allowed", uri)
	}
	port := u.Port()
	if port == "" {
		port = defaultPort
	}
	prefix = strings.Trim(u.Path, "/")
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if strings.Contains(prefix, "//") {
		return "", "", fmt.Errorf("consul uri %q: empty segment in key prefix %q", uri, prefix)
	}
	return net.JoinHostPort(u.Hostname(), port), prefix, nil
}

// Close ends every call in flight, including blocked Watch calls. Calls
// after Close, including Close, fail.
func (s *Store) Close() error {
	if s.life.Err() != nil {
		return fmt.Errorf("close consul %q: %w", s.addr, errClosed)
	}
	s.destroySession()
	s.close()
	s.transport.CloseIdleConnections()
	return nil
}

// check fails op on subject if ctx has ended or the store is closed.
func (s *Store) check(ctx context.Context, op, subject string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s %q: %w", op, subject, err)
	}
	if s.life.Err() != nil {
		return fmt.Errorf("%s %q: consul %q: %w", op, subject, s.addr, errClosed)
	}
	return nil
}

// checkKey is check plus the key syntax: non-empty, no leading slash.
func (s *Store) checkKey(ctx context.Context, op, key string) error {
	if err := s.check(ctx, op, key); err != nil {
		return err
	}
	if key == "" || strings.HasPrefix(key, "/") {
		return fmt.Errorf("%s %q: key must be a non-empty path without a leading slash", op, key)
	}
	return nil
}

// callCtx is ctx bounded by timeout and by the store's lifetime.
func (s *Store) callCtx(ctx context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	cctx, cancel := context.WithTimeout(ctx, timeout)
	stop := context.AfterFunc(s.life, cancel)
	return cctx, func() {
		stop()
		cancel()
	}
}

// fail wraps the error of a Consul call: the caller's ctx error if ctx
// ended, errClosed if the store was closed, else the call's error.
func (s *Store) fail(ctx context.Context, op, subject string, err error) error {
	switch {
	case ctx.Err() != nil && !errors.Is(err, ctx.Err()):
		return fmt.Errorf("%s %q: consul %q: %w: %w (%w)", op, subject, s.addr, ctx.Err(), err, store.ErrUnavailable)
	case ctx.Err() != nil:
		return fmt.Errorf("%s %q: consul %q: %w (%w)", op, subject, s.addr, err, store.ErrUnavailable)
	case s.life.Err() != nil:
		return fmt.Errorf("%s %q: consul %q: %w", op, subject, s.addr, errClosed)
	case retryable(err) || errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s %q: consul %q: %w (%w)", op, subject, s.addr, err, store.ErrUnavailable)
	default:
		return fmt.Errorf("%s %q: consul %q: %w", op, subject, s.addr, err)
	}
}

// path is key's Consul key.
func (s *Store) path(key string) string { return s.prefix + "/" + key }

// key is the store key of a Consul key under the prefix.
func (s *Store) key(path string) string { return strings.TrimPrefix(path, s.prefix+"/") }
