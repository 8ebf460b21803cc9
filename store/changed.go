package store

import "context"

// IndexChecker is implemented by stores that tell, in one read without
// the values, which of several keys were written or deleted since known
// indexes (both backends do; Changed reports every key for wrappers that
// do not, so their callers read everything as before).
//
// Why: reconcile checks every --reconcile-interval (5 s) each network of
// the host against its cluster record and its pool record, and both grow
// with the hosts on the network: read in full every round, they were most
// of an idle host's reads, growing over the cluster with hosts² (docs/
// scaling.md). They rarely change; asking whether they did costs one
// request whatever their size.
type IndexChecker interface {
	// Changed returns the keys of known whose ModifyIndex is no longer
	// the given one: written since, or deleted. Order is not specified.
	Changed(ctx context.Context, known map[string]uint64) ([]string, error)
}

// Changed returns the keys of known written or deleted since the given
// indexes: asked of s where it is an IndexChecker, else every key.
func Changed(ctx context.Context, s Store, known map[string]uint64) ([]string, error) {
	if len(known) == 0 {
		return nil, nil
	}
	// In a round (round.go) the round's read answers what it covers.
	return checkRound(ctx, s, known, func(known map[string]uint64) ([]string, error) {
		if ic, ok := s.(IndexChecker); ok {
			return ic.Changed(ctx, known)
		}
		out := make([]string, 0, len(known))
		for k := range known {
			out = append(out, k)
		}
		return out, nil
	})
}
