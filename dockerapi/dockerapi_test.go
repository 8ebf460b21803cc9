package dockerapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseHost(t *testing.T) {
	for _, tc := range []struct{ host, socket, base string }{
		{"unix:///run/docker.sock", "/run/docker.sock", "http://docker"},
		{"unix:///var/run/docker.sock", "/var/run/docker.sock", "http://docker"},
		{"tcp://127.0.0.1:2375", "", "http://127.0.0.1:2375"},
		{"tcp://[fd00::1]:2375", "", "http://[fd00::1]:2375"},
	} {
		socket, base, err := ParseHost(tc.host)
		if err != nil || socket != tc.socket || base != tc.base {
			t.Errorf("ParseHost(%q) = %q, %q, %v; want %q, %q", tc.host, socket, base, err, tc.socket, tc.base)
		}
	}
	for _, bad := range []string{"", "/run/docker.sock", "unix://run/docker.sock", "unix://", "tcp://h", "tcp://:2375/x", "http://h:2375", "unix:///x?y=1", "ssh://h"} {
		if _, _, err := ParseHost(bad); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%q", bad)) {
			t.Errorf("ParseHost(%q): %v; want an error naming it", bad, err)
		}
	}
}

// serve answers on a unix socket in a temporary directory, as dockerd does.
func serve(t *testing.T, h http.HandlerFunc) *Client {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "docker.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	c, err := New("unix://" + sock)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Get decodes answers, marks a 404 ErrNotFound and names the daemon and
// the path in every error.
func TestGet(t *testing.T) {
	c := serve(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/info":
			fmt.Fprintf(w, `{"Swarm":{"ControlAvailable":true},"Q":%q}`, r.URL.RawQuery)
		case "/broken":
			http.Error(w, `{"message":"boom"}`, http.StatusInternalServerError)
		default:
			http.Error(w, `{"message":"No such object"}`, http.StatusNotFound)
		}
	})
	var info struct {
		Swarm struct{ ControlAvailable bool }
		Q     string
	}
	if err := c.Get(context.Background(), "/info", map[string][]string{"all": {"1"}}, &info); err != nil || !info.Swarm.ControlAvailable || info.Q != "all=1" {
		t.Fatalf("GET /info: %+v, %v", info, err)
	}
	err := c.Get(context.Background(), "/networks/x", nil, nil)
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "/networks/x on "+c.Host()) {
		t.Errorf("GET of a missing object: %v; want ErrNotFound naming the path and %s", err, c.Host())
	}
	err = c.Get(context.Background(), "/broken", nil, nil)
	if err == nil || errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "500") || !strings.Contains(err.Error(), "boom") {
		t.Errorf("GET of a failing path: %v; want the status and Docker's message", err)
	}
	gone, err := New("unix://" + filepath.Join(t.TempDir(), "none.sock"))
	if err != nil {
		t.Fatal(err)
	}
	if err := gone.Get(context.Background(), "/info", nil, nil); err == nil || !strings.Contains(err.Error(), "none.sock") {
		t.Errorf("GET on a missing socket: %v; want an error naming it", err)
	}
}

// Events sends the filters, calls fn once per event line, and tells a
// stream the daemon ended from one the caller ended.
func TestEvents(t *testing.T) {
	release := make(chan struct{})
	c := serve(t, func(w http.ResponseWriter, r *http.Request) {
		if got := r.URL.Query().Get("filters"); got != `{"type":["network"]}` {
			http.Error(w, "filters "+got, http.StatusBadRequest)
			return
		}
		fmt.Fprintln(w, `{"Type":"network","Action":"connect"}`)
		fmt.Fprintln(w, `{"Type":"network","Action":"disconnect"}`)
		w.(http.Flusher).Flush()
		if strings.HasPrefix(r.URL.Path, "/hold/") {
			<-release
		}
	})
	n := 0
	err := c.Events(context.Background(), map[string][]string{"type": {"network"}}, func() { n++ })
	if n != 2 || err == nil || !strings.Contains(err.Error(), "ended") {
		t.Fatalf("Events: %d events, %v; want 2 and the end of the stream", n, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	defer close(release)
	c.base += "/hold" // the handler keeps this stream open
	if err := c.Events(ctx, map[string][]string{"type": {"network"}}, func() {}); err != nil {
		t.Errorf("Events ended by its context: %v; want nil", err)
	}
}
