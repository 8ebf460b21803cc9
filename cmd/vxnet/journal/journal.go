// Package journal keeps the removals Docker will not send again until the
// store takes them: a write-ahead log of DeleteNetwork, DeleteEndpoint,
// ReleaseAddress and ReleasePool requests, replayed by calling the
// driver and the IPAM directly.
//
// Why: Docker goes on when a removal fails. It forgets a network whose
// DeleteNetwork failed (only a "forbidden" error stops it), and
// `docker rm -f` forgets an endpoint whose DeleteEndpoint and
// ReleaseAddress failed; it does not send them again when the plugin died
// in the middle of one. vxnet would then keep the network's namespace and
// records, the endpoint's records and the address's lease for ever. So
// the plugin server writes every removal here before running it (Begin),
// drops it when the call is done, keeps it when the call's error is
// errkind.Unavailable, and Replay sends what is kept again, at start and
// every few seconds, until the store takes it. A create gets the matching
// removal written ahead too, dropped when the create succeeds: if the
// plugin dies in the middle, or the store fails after part of the records
// were written (a lost answer), Docker takes the create as failed and
// never asks for the removal. Every removal is idempotent, so replaying
// one that Docker also repeated does no harm.
//
// Entries are files in the journal's directory (on the host's /run: they
// survive a plugin crash, not a reboot, after which Docker cleans up its
// own endpoints), one per distinct request, replayed oldest first. A file
// holds the removal's plugin path and its request as Docker sends it, so
// entries written by an older vxnet replay unchanged.
package journal

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	ipamapi "github.com/docker/go-plugins-helpers/ipam"
	"github.com/docker/go-plugins-helpers/network"
	"github.com/sirupsen/logrus"

	"github.com/vxnet/vxnet/errkind"
)

// Removals are the calls a journal replays: the driver's and the IPAM's.
type Removals interface {
	DeleteNetwork(context.Context, *network.DeleteNetworkRequest) error
	DeleteEndpoint(context.Context, *network.DeleteEndpointRequest) error
	ReleaseAddress(context.Context, *ipamapi.ReleaseAddressRequest) error
	ReleasePool(context.Context, *ipamapi.ReleasePoolRequest) error
}

// The removals' plugin paths, as the entries name them.
const (
	deleteNetwork  = "/NetworkDriver.DeleteNetwork"
	deleteEndpoint = "/NetworkDriver.DeleteEndpoint"
	releaseAddress = "/IpamDriver.ReleaseAddress"
	releasePool    = "/IpamDriver.ReleasePool"
)

// replays decode an entry's request and call its removal.
var replays = map[string]func(context.Context, Removals, []byte) error{
	deleteNetwork:  replay(Removals.DeleteNetwork),
	deleteEndpoint: replay(Removals.DeleteEndpoint),
	releaseAddress: replay(Removals.ReleaseAddress),
	releasePool:    replay(Removals.ReleasePool),
}

func replay[Req any](call func(Removals, context.Context, *Req) error) func(context.Context, Removals, []byte) error {
	return func(ctx context.Context, r Removals, body []byte) error {
		req := new(Req)
		if err := json.Unmarshal(body, req); err != nil {
			return errkind.Errorf(errkind.BadRequest, "malformed journal entry: %w", err)
		}
		return call(r, ctx, req)
	}
}

// removalOf returns the removal that completes or undoes a callback's
// request (its plugin path and request), or "" when it needs none.
func removalOf(req any) (string, any) {
	switch r := req.(type) {
	case *network.DeleteNetworkRequest:
		return deleteNetwork, r
	case *network.DeleteEndpointRequest:
		return deleteEndpoint, r
	case *ipamapi.ReleaseAddressRequest:
		return releaseAddress, r
	case *ipamapi.ReleasePoolRequest:
		return releasePool, r
	case *network.CreateNetworkRequest:
		if r.NetworkID != "" {
			return deleteNetwork, &network.DeleteNetworkRequest{NetworkID: r.NetworkID}
		}
	case *network.CreateEndpointRequest:
		if r.EndpointID != "" {
			return deleteEndpoint, &network.DeleteEndpointRequest{NetworkID: r.NetworkID, EndpointID: r.EndpointID}
		}
	}
	return "", nil
}

// entry is one pending removal as written to its file.
type entry struct {
	Path string          `json:"path"`
	Body json.RawMessage `json:"body"`
	At   time.Time       `json:"at"`
	file string
}

// Journal holds the pending removals; safe for concurrent use.
type Journal struct {
	dir string
	log *logrus.Entry
	mu  sync.Mutex
	// running are the entries written ahead of calls still running:
	// not to be replayed under them (a create's removal would undo the
	// create).
	running map[string]int
}

// Open uses dir, creating it (0700) if needed; log gets what Replay did.
func Open(dir string, log *logrus.Entry) (*Journal, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("journal dir %q: %w", dir, err)
	}
	if log == nil {
		log = logrus.NewEntry(logrus.StandardLogger())
	}
	return &Journal{dir: dir, log: log, running: map[string]int{}}, nil
}

// Begin writes the removal a callback's request needs before the call
// runs (so a crash in the middle leaves it behind for the next start),
// and returns what to do with it once the call has answered: keep it if
// the call's error is errkind.Unavailable, drop it otherwise (done, or
// refused for good, which a replay would not change). Requests that need
// no removal get a func that does nothing. log names the call.
func (j *Journal) Begin(req any, log *logrus.Entry) (settle func(error)) {
	nothing := func(error) {}
	path, removal := removalOf(req)
	if path == "" {
		return nothing
	}
	b, err := json.Marshal(removal)
	if err != nil {
		return nothing
	}
	e, err := j.add(path, b)
	if err != nil {
		log.WithError(err).Error("could not journal the removal; a crash or store outage now leaves it undone")
		return nothing
	}
	return func(err error) {
		keep := errkind.Is(err, errkind.Unavailable)
		if keep {
			log.WithField("removal", path[1:]).Warn("store unavailable: removal journaled, replayed when the store is back")
		}
		if rerr := j.settle(e, keep); rerr != nil {
			log.WithError(rerr).Error("drop journal entry")
		}
	}
}

// Replay calls r for every pending removal, oldest first, and stops at
// the first one whose error is errkind.Unavailable. A removal that fails
// for another reason (the object is gone some other way) is dropped with
// a warning. It returns how many are still pending.
func (j *Journal) Replay(ctx context.Context, r Removals) (int, error) {
	es, err := j.entries()
	if err != nil {
		return 0, err
	}
	for i, e := range es {
		if ctx.Err() != nil {
			return len(es) - i, ctx.Err()
		}
		log := j.log.WithFields(logrus.Fields{"call": e.Path[1:], "pending_since": e.At})
		err := errkind.Errorf(errkind.BadRequest, "unknown removal %q", e.Path)
		if call, ok := replays[e.Path]; ok {
			err = call(ctx, r, e.Body)
		}
		switch {
		case errkind.Is(err, errkind.Unavailable):
			return len(es) - i, nil
		case err != nil:
			log.WithError(err).Warn("journaled removal failed for good; dropping it")
		default:
			log.Info("journaled removal done")
		}
		if err := j.remove(e); err != nil {
			return len(es) - i, err
		}
	}
	return 0, nil
}

// add writes a removal; the same request twice is one entry.
func (j *Journal) add(path string, body []byte) (entry, error) {
	sum := sha256.Sum256(append([]byte(path+"\n"), body...))
	e := entry{Path: path, Body: body, At: time.Now().UTC(), file: filepath.Join(j.dir, hex.EncodeToString(sum[:12])+".json")}
	b, err := json.Marshal(e)
	if err != nil {
		return e, err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	j.running[e.file]++
	if _, err := os.Stat(e.file); err == nil {
		return e, nil // keep the older time
	}
	tmp := e.file + ".tmp"
	err = os.WriteFile(tmp, b, 0o600)
	if err == nil {
		err = os.Rename(tmp, e.file)
	}
	if err != nil {
		j.finished(e.file)
		return e, fmt.Errorf("journal %s: %w", path, err)
	}
	return e, nil
}

// finished ends a call's hold on its entry; the caller holds mu.
func (j *Journal) finished(file string) {
	if j.running[file]--; j.running[file] <= 0 {
		delete(j.running, file)
	}
}

// settle ends a call's hold on its entry and removes the entry unless
// keep: the removal is still needed (the store was unavailable).
func (j *Journal) settle(e entry, keep bool) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.finished(e.file)
	if keep || j.running[e.file] > 0 {
		return nil
	}
	return removeFile(e.file)
}

// entries lists the pending removals no running call holds, oldest first.
func (j *Journal) entries() ([]entry, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	files, err := filepath.Glob(filepath.Join(j.dir, "*.json"))
	if err != nil {
		return nil, err
	}
	var out []entry
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("read journal entry %q: %w", f, err)
		}
		var e entry
		if err := json.Unmarshal(b, &e); err != nil || !strings.HasPrefix(e.Path, "/") {
			os.Remove(f) // a torn write: nothing to replay
			continue
		}
		e.file = f
		if j.running[f] == 0 {
			out = append(out, e)
		}
	}
	sort.SliceStable(out, func(a, b int) bool { return out[a].At.Before(out[b].At) })
	return out, nil
}

func (j *Journal) remove(e entry) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return removeFile(e.file)
}

func removeFile(file string) error {
	if err := os.Remove(file); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove journal entry %q: %w", file, err)
	}
	return nil
}
