package server

import (
	"strings"
	"testing"
	"time"
)

// dockerd resends a call whose connection broke with an empty body: a call
// that takes arguments answers that clearly instead of running with a
// zero request; argument-less calls still take an empty body.
func TestEmptyBodyOfACallWithArguments(t *testing.T) {
	s, st := newServer(t, time.Second)
	code, out := call(s, "POST", "/NetworkDriver.CreateNetwork", "")
	if msg, _ := out["Err"].(string); code != 400 || !strings.Contains(msg, "empty request body") || st.calls.Load() != 0 {
		t.Fatalf("CreateNetwork with an empty body: %d %v (driver called %d times)", code, out, st.calls.Load())
	}
	if code, out := call(s, "POST", "/IpamDriver.GetDefaultAddressSpaces", ""); code != 200 {
		t.Fatalf("GetDefaultAddressSpaces with an empty body: %d %v", code, out)
	}
}
