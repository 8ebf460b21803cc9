// Package server speaks Docker's plugin protocol on one socket for both
// vxnet drivers: Plugin.Activate lists NetworkDriver and IpamDriver, and
// every callback path decodes its request into the go-plugins-helpers type,
// runs the driver with a deadline, and answers in Docker's form.
//
// It replaces the helpers' own handlers for three reasons: they answer a
// malformed body with plain text instead of {"Err": ...}, each serves one
// interface per socket, and they put no bound on body size or run time.
//
// Invariants: every response is JSON; errors are {"Err": "<message>"} with
// a non-2xx status chosen by the error's errkind (status.go); no request
// body over MaxBody is read; a callback that runs past Timeout is answered with an error naming the callback, and a
// panic in a callback is answered (and logged) instead of killing the
// plugin.
package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/docker/go-plugins-helpers/sdk"
	"github.com/sirupsen/logrus"

	"github.com/vxnet/vxnet/cmd/vxnet/journal"
	"github.com/vxnet/vxnet/errkind"
)

// Defaults for Options.
const (
	// DefaultTimeout bounds a callback's work. It is as long as a slow
	// but answering Consul may need (at 100 simulated hosts a
	// CreateEndpoint's transaction ran out of 10 s on saturated servers),
	// and, with lateGrace, below dockerd's own wait for a plugin's answer:
	// 30 s for a managed plugin enabled with `docker plugin enable`'s
	// default --timeout, none for a socket plugin or one installed with
	// `docker plugin install` (moby pkg/plugins/client.go; the HTTP
	// client's timeout is the plugin's, and callWithRetry sends no second
	// request once 30 s are spent). A dead store does not hold dockerd
	// this long: the Consul store fails its calls at once after 3 s of
	// failures (store/consul/retry.go).
	DefaultTimeout = 25 * time.Second
	DefaultMaxBody = 1 << 20
	// lateGrace is how long a callback past its Timeout, its context
	// cancelled, may still take to give its own answer (run).
	lateGrace = 2 * time.Second
)

// Options configure a Server.
type Options struct {
	Timeout time.Duration
	MaxBody int64
	Log     *logrus.Entry
	// Journal, if set, keeps the removals that failed for want of the
	// store until Replay gets them done.
	Journal *journal.Journal
	// Observe, if set, gets every callback's name, result (ok, error,
	// bad_request, timeout) and duration, e.g. for metrics.
	Observe func(call, result string, took time.Duration)
}

// Server is the plugin's HTTP handler.
type Server struct {
	o   Options
	mux *http.ServeMux
	nd  NetworkDriver
	id  IPAMDriver
}

// errorResponse is Docker's error form.
type errorResponse struct {
	Err string
}

// New returns a Server answering for the network driver nd and the IPAM
// driver id.
func New(nd NetworkDriver, id IPAMDriver, o Options) *Server {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MaxBody <= 0 {
		o.MaxBody = DefaultMaxBody
	}
	if o.Log == nil {
		o.Log = logrus.NewEntry(logrus.StandardLogger())
	}
	s := &Server{o: o, mux: http.NewServeMux(), nd: nd, id: id}
	s.mux.HandleFunc("/Plugin.Activate", func(w http.ResponseWriter, _ *http.Request) {
		write(w, http.StatusOK, map[string][]string{"Implements": {"NetworkDriver", "IpamDriver"}})
	})
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		write(w, http.StatusNotFound, errorResponse{Err: fmt.Sprintf("unknown plugin endpoint %q", r.URL.Path)})
	})
	registerNetwork(s, nd)
	registerIPAM(s, id)
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// handle registers one callback: decode a Req, call fn, encode its answer.
func handle[Req any, Resp any](s *Server, path string, fn func(context.Context, *Req) (Resp, error)) {
	s.mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		log := s.o.Log.WithField("call", path[1:])
		req := new(Req)
		body, err := s.decode(w, r, req)
		if _, argless := any(req).(*empty); err == nil && !argless && len(bytes.TrimSpace(body)) == 0 {
			// dockerd's plugin client resends a call whose connection broke
			// (the plugin restarted) with the body already consumed.
			err = errors.New("empty request body: dockerd resends one when it retries a call after the plugin restarted; run the command again")
		}
		if err != nil {
			s.observe(path[1:], "bad_request", start)
			log.WithError(err).Warn("bad request")
			write(w, http.StatusBadRequest, errorResponse{Err: fmt.Sprintf("%s: %v", path[1:], err)})
			return
		}
		log.WithField("request", req).Debug("call")
		done := s.begin(req, log)
		resp, err := run(s, r.Context(), path[1:], req, fn)
		done(err)
		s.observe(path[1:], result(err), start)
		if err != nil {
			log.WithError(err).WithField("took", time.Since(start)).Warn("call failed")
			write(w, status(err), errorResponse{Err: err.Error()})
			return
		}
		log.WithField("took", time.Since(start)).Debug("call done")
		write(w, http.StatusOK, resp)
	})
}

// observe reports a callback to Options.Observe.
func (s *Server) observe(call, result string, start time.Time) {
	if s.o.Observe != nil {
		s.o.Observe(call, result, time.Since(start))
	}
}

// decode reads at most MaxBody bytes of JSON into req and returns them.
// An empty body or "null" leaves req zero, as Docker sends for
// argument-less calls.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, req any) ([]byte, error) {
	if r.Method != http.MethodPost {
		return nil, fmt.Errorf("method %s not allowed, use POST", r.Method)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.o.MaxBody))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return nil, fmt.Errorf("request body over %d bytes", s.o.MaxBody)
	}
	if err != nil {
		return nil, fmt.Errorf("read request: %w", err)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return body, nil
	}
	if err := json.Unmarshal(body, req); err != nil {
		return nil, fmt.Errorf("malformed request: %w", err)
	}
	return body, nil
}

// run calls fn with a deadline. When the deadline passes first, fn's
// context is cancelled (its store calls end at once, and it rolls back
// what it did) and its own answer is awaited for lateGrace more: a
// success that lands just after the deadline is answered as a success,
// an error as the timeout it is (Unavailable, so the journal keeps the
// removal matching a create, as for an fn that gave no answer). Only an
// fn still running then is answered "no answer within" without its
// result; should it succeed later, that is logged as an error.
//
// Why wait for the late answer: dockerd sends no DeleteEndpoint after a
// CreateEndpoint that failed, no DeleteNetwork after a failed
// CreateNetwork (libnetwork releases the addresses and the pool), and
// nothing at all after a failed RequestAddress, so what fn made after an
// answered timeout stayed behind (a create only until the journal's
// replay of its removal). Timeout + lateGrace stays below dockerd's own
// wait (DefaultTimeout).
func run[Req any, Resp any](s *Server, ctx context.Context, name string, req *Req, fn func(context.Context, *Req) (Resp, error)) (Resp, error) {
	ctx, cancel := context.WithTimeout(ctx, s.o.Timeout)
	defer cancel()
	type result struct {
		resp Resp
		err  error
	}
	done := make(chan result, 1)
	var gaveUp atomic.Bool
	go func() {
		defer func() {
			if p := recover(); p != nil {
				s.o.Log.WithField("call", name).Errorf("panic: %v\n%s", p, debug.Stack())
				done <- result{err: fmt.Errorf("%s: internal error: %v", name, p)}
			}
		}()
		resp, err := fn(ctx, req)
		done <- result{resp, err}
		if err == nil && gaveUp.Load() {
			s.o.Log.WithField("call", name).WithField("request", req).Errorf("succeeded after it was answered as failed (no answer within %s and %s more): Docker may keep no record of what it made", s.o.Timeout, lateGrace)
		}
	}()
	select {
	case r := <-done:
		return r.resp, r.err
	case <-ctx.Done():
	}
	late := func(r result) (Resp, error) {
		if r.err != nil {
			// Unavailable whatever fn's error: the journal keeps the
			// removal matching a create cut off by the deadline.
			return r.resp, errkind.Mark(fmt.Errorf("%s: no answer within %s (%w): %w", name, s.o.Timeout, ctx.Err(), r.err), errkind.Unavailable)
		}
		return r.resp, nil
	}
	t := time.NewTimer(lateGrace)
	defer t.Stop()
	select {
	case r := <-done:
		return late(r)
	case <-t.C:
	}
	gaveUp.Store(true)
	select {
	case r := <-done: // sent before gaveUp was set: not logged there
		return late(r)
	default:
		var zero Resp
		return zero, fmt.Errorf("%s: no answer within %s: %w", name, s.o.Timeout, ctx.Err())
	}
}

func write(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil || string(b) == "null" {
		b = []byte("{}")
	}
	w.Header().Set("Content-Type", sdk.DefaultContentTypeV1_1)
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
