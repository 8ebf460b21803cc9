package server

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/go-plugins-helpers/network"
	"github.com/sirupsen/logrus"

	"github.com/vxnet/vxnet/cmd/vxnet/journal"
	"github.com/vxnet/vxnet/store"
)

// withJournal is a server for d with a journal in a new directory, and
// that directory; calls time out after timeout.
func withJournal(t *testing.T, d NetworkDriver, timeout time.Duration) (*Server, string) {
	t.Helper()
	l := logrus.New()
	l.SetOutput(io.Discard)
	dir := t.TempDir()
	j, err := journal.Open(dir, logrus.NewEntry(l))
	if err != nil {
		t.Fatal(err)
	}
	return New(d, ipamStub{}, Options{Timeout: timeout, Log: logrus.NewEntry(l), Journal: j}), dir
}

// wantEntries fails the test unless the journal in dir holds n entries;
// msg formats the count found.
func wantEntries(t *testing.T, dir string, n int, msg string) {
	t.Helper()
	if files, _ := os.ReadDir(dir); len(files) != n {
		t.Fatalf(msg, len(files))
	}
}

// outageDriver fails DeleteNetwork and CreateEndpoint as a driver does
// while its store is unreachable, until the store is back.
type outageDriver struct {
	stub
	down    atomic.Bool
	deleted atomic.Int32 // successful DeleteNetwork and DeleteEndpoint calls
}

func (d *outageDriver) DeleteNetwork(context.Context, *network.DeleteNetworkRequest) error {
	if d.down.Load() {
		return fmt.Errorf("look up network: %w", store.ErrUnavailable)
	}
	d.deleted.Add(1)
	return nil
}

func (d *outageDriver) CreateEndpoint(context.Context, *network.CreateEndpointRequest) (*network.CreateEndpointResponse, error) {
	return nil, fmt.Errorf("record endpoint: lost answer: %w", store.ErrUnavailable)
}

func (d *outageDriver) DeleteEndpoint(_ context.Context, r *network.DeleteEndpointRequest) error {
	if d.down.Load() {
		return fmt.Errorf("delete endpoint: %w", store.ErrUnavailable)
	}
	if r.EndpointID != "ep1" {
		return fmt.Errorf("wrong endpoint %q", r.EndpointID)
	}
	d.deleted.Add(1)
	return nil
}

// A removal Docker gave up on during a store outage, and the removal a
// failed create needs, are done once the store is back; other failures
// are not journaled, and a replayed request is not journaled twice.
func TestJournalReplaysRemovalsAfterOutage(t *testing.T) {
	d := &outageDriver{}
	s, dir := withJournal(t, d, time.Second)
	d.down.Store(true)
	for _, c := range []struct {
		path, body string
		code       int
	}{
		{"/NetworkDriver.DeleteNetwork", `{"NetworkID":"n1"}`, 503},
		{"/NetworkDriver.DeleteNetwork", `{"NetworkID":"n1"}`, 503}, // Docker's retry: one entry
		{"/NetworkDriver.CreateEndpoint", `{"NetworkID":"n1","EndpointID":"ep1","Interface":{}}`, 503},
		{"/NetworkDriver.CreateNetwork", `{"NetworkID":"fail"}`, 500}, // not a store failure
	} {
		if code, out := call(s, "POST", c.path, c.body); code != c.code {
			t.Fatalf("%s during the outage: %d %v, want %d", c.path, code, out, c.code)
		}
	}
	wantEntries(t, dir, 2, "journal holds %d entries, want 2 (DeleteNetwork n1, DeleteEndpoint ep1)")
	if n, err := s.Replay(t.Context()); err != nil || n != 2 {
		t.Fatalf("replay while the store is down: %d pending, %v; want 2", n, err)
	}
	wantEntries(t, dir, 2, "a failed replay changed the journal: %d entries")
	d.down.Store(false)
	if n, err := s.Replay(t.Context()); err != nil || n != 0 {
		t.Fatalf("replay with the store back: %d pending, %v", n, err)
	}
	if got := d.deleted.Load(); got != 2 {
		t.Fatalf("%d removals done, want 2", got)
	}
	wantEntries(t, dir, 0, "journal not empty after replay: %d entries")
}

// blockingDriver holds DeleteNetwork until released, as a plugin killed in
// the middle of one would.
type blockingDriver struct {
	stub
	entered, release chan struct{}
}

func (d *blockingDriver) DeleteNetwork(context.Context, *network.DeleteNetworkRequest) error {
	close(d.entered)
	<-d.release
	return nil
}

// A removal is in the journal while it runs (a crash then leaves it for
// the replay at the next start) and gone once it is done; a successful
// create leaves nothing.
func TestJournalIsWrittenAhead(t *testing.T) {
	d := &blockingDriver{entered: make(chan struct{}), release: make(chan struct{})}
	s, dir := withJournal(t, d, 5*time.Second)
	answered := make(chan int)
	go func() {
		code, _ := call(s, "POST", "/NetworkDriver.DeleteNetwork", `{"NetworkID":"n1"}`)
		answered <- code
	}()
	<-d.entered
	wantEntries(t, dir, 1, "journal holds %d entries during DeleteNetwork, want 1")
	close(d.release)
	if code := <-answered; code != 200 {
		t.Fatalf("DeleteNetwork: %d", code)
	}
	if code, _ := call(s, "POST", "/NetworkDriver.CreateNetwork", `{"NetworkID":"n2"}`); code != 200 {
		t.Fatalf("CreateNetwork: %d", code)
	}
	wantEntries(t, dir, 0, "journal holds %d entries after the calls succeeded, want 0")
}

// slowCreate holds CreateNetwork until released and counts DeleteNetwork.
type slowCreate struct {
	stub
	entered, release chan struct{}
	deleted          atomic.Int32
}

func (d *slowCreate) CreateNetwork(context.Context, *network.CreateNetworkRequest) error {
	close(d.entered)
	<-d.release
	return nil
}

func (d *slowCreate) DeleteNetwork(context.Context, *network.DeleteNetworkRequest) error {
	d.deleted.Add(1)
	return nil
}

// The removal written ahead of a create still running is not replayed
// under it (it would undo the create), and goes when the create succeeds.
func TestJournalSkipsRunningCalls(t *testing.T) {
	l := logrus.New()
	l.SetOutput(io.Discard)
	j, err := journal.Open(t.TempDir(), logrus.NewEntry(l))
	if err != nil {
		t.Fatal(err)
	}
	d := &slowCreate{entered: make(chan struct{}), release: make(chan struct{})}
	s := New(d, ipamStub{}, Options{Timeout: 5 * time.Second, Log: logrus.NewEntry(l), Journal: j})
	answered := make(chan int)
	go func() {
		code, _ := call(s, "POST", "/NetworkDriver.CreateNetwork", `{"NetworkID":"n1"}`)
		answered <- code
	}()
	<-d.entered
	if n, err := s.Replay(t.Context()); err != nil || n != 0 || d.deleted.Load() != 0 {
		t.Fatalf("replay during the create: %d pending, %v, %d deletes; want none", n, err, d.deleted.Load())
	}
	close(d.release)
	if code := <-answered; code != 200 {
		t.Fatalf("CreateNetwork: %d", code)
	}
	if n, err := s.Replay(t.Context()); err != nil || n != 0 || d.deleted.Load() != 0 {
		t.Fatalf("replay after the create: %d pending, %v, %d deletes; want none", n, err, d.deleted.Load())
	}
}
