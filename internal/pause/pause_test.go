package pause

import (
	"context"
	"testing"
	"time"
)

func TestFor(t *testing.T) {
	if !For(context.Background(), time.Millisecond) {
		t.Error("a 1 ms pause on a live context did not elapse")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	if For(ctx, time.Hour) {
		t.Error("a pause on a cancelled context elapsed")
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("a pause on a cancelled context took %s", d)
	}
}
