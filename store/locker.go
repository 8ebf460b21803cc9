package store

import (
	"context"
	"time"
)

// Locker is implemented by stores that can hold a key for this process
// (on Consul an acquire with the session that holds its ephemeral keys):
// while it holds the key no other process's Lock writes it, and when the
// process stops renewing the session the store deletes the key, as it
// does its ephemeral keys (Ephemeral). Stores without it (bbolt: one
// host) have nothing to elect.
//
// Why: the liveness monitors (driver/liveness) are elected with it. Every
// host read every host's heartbeat; at 200 simulated hosts that read was
// the largest call of the cluster (docs/scaling.md, change 29).
type Locker interface {
	// Lock writes value to key if no other process holds it, and holds
	// it; it tells whether this process holds the key now. The holder
	// rewrites its value with Lock. ttl is the session's, as for
	// PutEphemeral.
	Lock(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error)
}
