package store

import (
	"context"
	"fmt"
)

// MaxTxnOps is the most operations one Txn may hold: Consul's limit for
// one transaction.
const MaxTxnOps = 64

// Verb is what one Op of a transaction does.
type Verb int

const (
	// VerbCAS writes Value if the key's ModifyIndex is Index (0: only if
	// the key is absent), as Store.CAS.
	VerbCAS Verb = iota
	// VerbPut writes Value unconditionally.
	VerbPut
	// VerbDelete removes the key; a missing key is not an error.
	VerbDelete
)

// Op is one operation of a transaction.
type Op struct {
	Verb  Verb
	Key   string
	Value []byte
	Index uint64 // VerbCAS only
}

// Create is the Op that writes value under key only if the key is absent.
func Create(key string, value []byte) Op { return Op{Verb: VerbCAS, Key: key, Value: value} }

// Txner is implemented by every backend (Store embeds it): several writes
// applied atomically, as one request and one log entry.
type Txner interface {
	// Txn applies ops all or none, at one new store index, in one request
	// (on Consul one Raft entry: a transaction counts as one write). If a
	// VerbCAS condition does not hold, nothing is written and the error
	// wraps ErrConflict and names the first key whose condition failed. A
	// retry after a lost answer that finds every write of ops in place
	// (equal values, deleted keys absent) is the earlier attempt's
	// success. At most MaxTxnOps operations.
	Txn(ctx context.Context, ops []Op) error
}

// CheckOps refuses an empty transaction, one over MaxTxnOps, a key used
// twice, and unknown verbs.
func CheckOps(ops []Op) error {
	if len(ops) == 0 || len(ops) > MaxTxnOps {
		return fmt.Errorf("transaction of %d operations: want 1..%d", len(ops), MaxTxnOps)
	}
	seen := make(map[string]bool, len(ops))
	for _, op := range ops {
		if seen[op.Key] {
			return fmt.Errorf("transaction: key %q more than once", op.Key)
		}
		seen[op.Key] = true
		if op.Verb < VerbCAS || op.Verb > VerbDelete {
			return fmt.Errorf("transaction: key %q: unknown verb %d", op.Key, op.Verb)
		}
	}
	return nil
}

// TxnKey names a transaction in errors: its first key, and how many more.
func TxnKey(ops []Op) string {
	ks := make([]string, len(ops))
	for i, op := range ops {
		ks[i] = op.Key
	}
	return KeysName(ks)
}

// KeysName names several keys in errors: the first, and how many more.
func KeysName(ks []string) string {
	switch len(ks) {
	case 0:
		return "no keys"
	case 1:
		return ks[0]
	}
	return fmt.Sprintf("%s (+%d keys)", ks[0], len(ks)-1)
}
