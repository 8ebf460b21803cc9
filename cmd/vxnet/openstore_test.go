package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/vxnet/vxnet/store"
)

// A Consul that does not answer at start is tried again until it answers
// (here: a fake Consul comes up on the address after a few refusals); a
// malformed URI fails at once.
func TestOpenStoreWaitsForConsul(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // refused until the fake comes up
	logger, hook := logtest.NewNullLogger()
	log := logrus.NewEntry(logger)

	up := make(chan *http.Server, 1)
	go func() {
		time.Sleep(300 * time.Millisecond)
		l, err := net.Listen("tcp", addr)
		if err != nil {
			up <- nil
			return
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/v1/status/leader" {
				w.Write([]byte(`"127.0.0.1:8300"`))
				return
			}
			http.NotFound(w, r)
		})}
		up <- srv
		srv.Serve(l)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := openStoreWaiting(ctx, "consul://"+addr+"/p", log, 20*time.Millisecond, 50*time.Millisecond)
	if srv := <-up; srv != nil {
		defer srv.Close()
	} else {
		t.Fatal("the test's port was taken by another process before the fake Consul could listen on it")
	}
	if err != nil {
		t.Fatalf("open once Consul answers: %v", err)
	}
	st.Close()
	warned := 0
	for _, e := range hook.AllEntries() {
		if e.Level == logrus.WarnLevel {
			warned++
		}
	}
	if warned < 2 {
		t.Errorf("%d warnings while Consul refused for 300 ms with 20–50 ms between tries, want several", warned)
	}

	hook.Reset()
	_, err = openStoreWaiting(ctx, "consul://%zz", log, 20*time.Millisecond, 50*time.Millisecond)
	if err == nil || errors.Is(err, store.ErrUnavailable) || len(hook.AllEntries()) != 0 {
		t.Errorf("malformed URI: %v after %d log entries, want an error at once", err, len(hook.AllEntries()))
	}
}

// A Consul that never answers: the wait ends with the context, with the
// store's error.
func TestOpenStoreGivesUpWithTheContext(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	logger, _ := logtest.NewNullLogger()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	began := time.Now()
	_, err = openStoreWaiting(ctx, "consul://"+addr, logrus.NewEntry(logger), 20*time.Millisecond, 50*time.Millisecond)
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("got %v, want an error wrapping store.ErrUnavailable", err)
	}
	if took := time.Since(began); took > 3*time.Second {
		t.Errorf("returned %s after the context ended", took)
	}
}
