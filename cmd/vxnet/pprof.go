package main

import (
	"context"
	"net/http"
	"net/http/pprof"
	"runtime"
	"time"

	"github.com/sirupsen/logrus"
)

// servePprof serves Go's profiles (/debug/pprof/: CPU, heap, goroutines,
// mutex and block) on addr until ctx ends, for `go tool pprof` against a
// running plugin (issue #13's Join profile). Off unless --pprof-addr is
// set: the profiles show internals, so it belongs on loopback. With it,
// contended locks and blocking of 100 µs or more are recorded (what a slow
// Join waits for); shorter blocking is sampled.
func servePprof(ctx context.Context, addr string, log *logrus.Entry) error {
	runtime.SetMutexProfileFraction(1)
	runtime.SetBlockProfileRate(int(100 * time.Microsecond))
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return serveTCP(ctx, "--pprof-addr", addr, mux, log.WithField("serves", "/debug/pprof"))
}
