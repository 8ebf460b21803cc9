package errkind

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

func TestOf(t *testing.T) {
	notFound := New(NotFound, "not found")
	for _, c := range []struct {
		name string
		err  error
		want Kind
	}{
		{"nil", nil, Other},
		{"plain", errors.New("boom"), Other},
		{"sentinel", notFound, NotFound},
		{"wrapped sentinel", fmt.Errorf("get %q: %w", "some/key", notFound), NotFound},
		{"errorf", Errorf(BadRequest, "bad MAC %q", "zz"), BadRequest},
		{"outermost mark wins", Mark(fmt.Errorf("endpoint e1: %w", notFound), Conflict), Conflict},
		{"second of two wrapped", fmt.Errorf("put: %w (%w)", context.Canceled, New(Unavailable, "store unavailable")), Unavailable},
		{"deadline", fmt.Errorf("call: %w", context.DeadlineExceeded), Unavailable},
		{"canceled", context.Canceled, Other},
	} {
		if got := Of(c.err); got != c.want {
			t.Errorf("%s: Of(%v) = %s, want %s", c.name, c.err, got, c.want)
		}
	}
}

// A mark keeps the message and the chain: errors.Is still finds what was
// wrapped, and the sentinel itself.
func TestMarkKeepsMessageAndChain(t *testing.T) {
	base := errors.New(`subnet 198.19.1.0/24 overlaps subnet 198.19.1.0/25 of vxnet network "n"`)
	err := Mark(base, Conflict)
	if err.Error() != base.Error() {
		t.Fatalf("message changed: %q", err)
	}
	if !errors.Is(err, base) || !Is(err, Conflict) || Is(err, NotFound) {
		t.Fatalf("chain or kind lost: Is(base)=%v kind=%s", errors.Is(err, base), Of(err))
	}
	if Mark(nil, Conflict) != nil {
		t.Fatal("Mark(nil) is not nil")
	}
	s := New(NotFound, "not found")
	if w := fmt.Errorf("get: %w", s); !errors.Is(w, s) || errors.Is(w, New(NotFound, "not found")) {
		t.Fatal("a sentinel is matched by identity, not by kind or text")
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{Other: "other", NotFound: "not found", Conflict: "conflict", BadRequest: "bad request", Unavailable: "unavailable", 9: "kind 9"} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", uint8(k), got, want)
		}
	}
}
