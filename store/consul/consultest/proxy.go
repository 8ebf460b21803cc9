package consultest

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
)

// Proxy stands in front of a real Consul for a test that changes what a
// client sees of it (answers held, lost or counted): each request goes to
// the serve func it was started with, which passes it on with Forward or
// Lose, or answers it itself. It stops when the test ends.
type Proxy struct {
	URL string // http://host:port of the proxy

	consul *httputil.ReverseProxy
}

// NewProxy starts a Proxy in front of the Consul at addr that hands each
// request to serve; nil serve forwards every request.
func NewProxy(t *testing.T, addr string, serve http.HandlerFunc) *Proxy {
	t.Helper()
	u, err := url.Parse("http://" + addr)
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{consul: httputil.NewSingleHostReverseProxy(u)}
	if serve == nil {
		serve = p.Forward
	}
	srv := httptest.NewServer(serve)
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}

// Addr is the proxy's host:port, for a store's address.
func (p *Proxy) Addr() string { return strings.TrimPrefix(p.URL, "http://") }

// Forward sends r to Consul and its answer to w.
func (p *Proxy) Forward(w http.ResponseWriter, r *http.Request) { p.consul.ServeHTTP(w, r) }

// Lose sends r to Consul and drops the answer: the request is applied,
// its caller learns nothing of it.
func (p *Proxy) Lose(r *http.Request) { p.consul.ServeHTTP(httptest.NewRecorder(), r) }

// Txn is the kind of /v1/txn writes and read transactions, KVGet of
// /v1/kv reads.
const (
	Txn   = "PUT /v1/txn"
	KVGet = "GET /v1/kv/"
)

// Kind is r's kind (Txn, KVGet), or "" for any other request.
func Kind(r *http.Request) string {
	switch {
	case r.Method == http.MethodPut && r.URL.Path == "/v1/txn":
		return Txn
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/kv/"):
		return KVGet
	}
	return ""
}
