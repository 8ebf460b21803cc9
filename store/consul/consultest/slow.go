package consultest

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// Slow stands in front of a real Consul like an agent whose servers are
// saturated: the requests it is told to hold get no answer (their caller
// times out), yet each is still sent to Consul, so a held write may be
// applied after its caller gave up on it. A held request is sent when the
// next request of the same kind arrives (the caller's retry): before the
// retry (the retry finds the write applied) or, with Late, after the
// retry was answered (the held write arrives last), or when
// the test ends.
type Slow struct {
	*Proxy

	mu   sync.Mutex
	late bool                 // see Slow
	only string               // see Only
	hold map[string]int       // kind → requests still to hold
	held map[string]*heldCall // kind → the request held now
	done chan struct{}        // closed by Release
	wg   sync.WaitGroup
	once sync.Once
}

type heldCall struct {
	sent  chan struct{} // closed once the held request reached Consul
	retry chan struct{} // closed when the next request of its kind came
}

// NewSlow starts a Slow in front of the Consul at addr; it stops when
// the test ends.
func NewSlow(t *testing.T, addr string) *Slow {
	t.Helper()
	s := &Slow{hold: map[string]int{}, held: map[string]*heldCall{}, done: make(chan struct{})}
	s.Proxy = NewProxy(t, addr, s.serve)
	t.Cleanup(s.Release) // runs before the proxy stops, which waits for held calls
	return s
}

// Release sends every request still held to Consul and answers no more
// requests late; it returns when they were sent.
func (s *Slow) Release() {
	s.once.Do(func() { close(s.done) })
	s.wg.Wait()
}

// Late makes the held requests reach Consul after their retry was
// answered (else before the retry).
func (s *Slow) Late(late bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.late = late
}

// Only holds only requests whose path, query or body contains sub (e.g.
// a key: Consul's txn API takes keys in clear).
func (s *Slow) Only(sub string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.only = sub
}

// Hold makes the next n requests of kind go unanswered.
func (s *Slow) Hold(kind string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hold[kind] = n
}

func (s *Slow) serve(w http.ResponseWriter, r *http.Request) {
	kind := Kind(r)
	s.mu.Lock()
	late, only := s.late, s.only
	s.mu.Unlock()
	if kind != "" && only != "" {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		if !strings.Contains(r.URL.String(), only) && !bytes.Contains(body, []byte(only)) {
			kind += " " // not held, and no retry of a held one
		}
	}
	s.mu.Lock()
	prev := s.held[kind]
	delete(s.held, kind)
	var mine *heldCall
	if kind != "" && s.hold[kind] > 0 {
		s.hold[kind]--
		mine = &heldCall{sent: make(chan struct{}), retry: make(chan struct{})}
		s.held[kind] = mine
	}
	s.mu.Unlock()
	switch {
	case prev != nil && mine == nil && late:
		rec := httptest.NewRecorder()
		s.Forward(rec, r)
		close(prev.retry)
		<-prev.sent
		copyResponse(w, rec)
		return
	case prev != nil && mine == nil:
		close(prev.retry)
		<-prev.sent
	case prev != nil:
		close(prev.retry)
	}
	if mine == nil {
		s.Forward(w, r)
		return
	}
	body, _ := io.ReadAll(r.Body)
	s.wg.Add(1)
	go s.sendHeld(r, body, mine)
	select {
	case <-r.Context().Done(): // the caller timed out: no answer
	case <-s.done:
	}
}

// sendHeld sends a held request to Consul once its retry came (or the
// test ended), after its caller has gone; the answer is dropped.
func (s *Slow) sendHeld(r *http.Request, body []byte, h *heldCall) {
	defer s.wg.Done()
	defer close(h.sent)
	select {
	case <-h.retry:
	case <-s.done:
	}
	out := r.Clone(context.Background())
	out.Body = io.NopCloser(bytes.NewReader(body))
	out.ContentLength = int64(len(body))
	s.Lose(out)
}

func copyResponse(w http.ResponseWriter, rec *httptest.ResponseRecorder) {
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}
