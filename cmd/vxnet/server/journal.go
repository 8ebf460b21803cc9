package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/vxnet/vxnet/errkind"
)

// The journal of pending removals. Docker goes on when a removal fails:
// it forgets a network whose DeleteNetwork failed (only a "forbidden"
// error stops it), and `docker rm -f` forgets an endpoint whose
// DeleteEndpoint and ReleaseAddress failed; it does not send them again
// when the plugin died in the middle of one. vxnet would then keep the
// network's namespace and records, the endpoint's records and the
// address's lease for ever. So the server writes every removal to the
// journal before running it (a write-ahead log), drops it when the call
// is done, keeps it when the store was unavailable, and Replay sends what
// is kept again, through the same handler, at start and every few seconds
// until the store takes it. A create gets the matching removal written
// ahead too, dropped when the create succeeds: if the plugin dies in the
// middle, or the store fails after part of the records were written (a
// lost answer), Docker takes the create as failed and never asks for the
// removal. Every removal is idempotent, so replaying one that Docker also
// repeated does no harm.
//
// Entries are files in Dir (on the host's /run: they survive a plugin
// crash, not a reboot, after which Docker cleans up its own endpoints), one
// per distinct request, replayed oldest first.

// journaled maps a failed call to the removal that completes it.
var journaled = map[string]func(body []byte) (path string, req any){
	"/NetworkDriver.DeleteNetwork":  same,
	"/NetworkDriver.DeleteEndpoint": same,
	"/IpamDriver.ReleaseAddress":    same,
	"/IpamDriver.ReleasePool":       same,
	"/NetworkDriver.CreateNetwork": func(body []byte) (string, any) {
		var r struct{ NetworkID string }
		if json.Unmarshal(body, &r) != nil || r.NetworkID == "" {
			return "", nil
		}
		return "/NetworkDriver.DeleteNetwork", r
	},
	"/NetworkDriver.CreateEndpoint": func(body []byte) (string, any) {
		var r struct{ NetworkID, EndpointID string }
		if json.Unmarshal(body, &r) != nil || r.EndpointID == "" {
			return "", nil
		}
		return "/NetworkDriver.DeleteEndpoint", r
	},
}

// same journals the request itself.
func same(body []byte) (string, any) { return "", json.RawMessage(body) }

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
	mu  sync.Mutex
	// running are the entries written ahead of calls still running:
	// not to be replayed under them (a create's removal would undo the
	// create).
	running map[string]int
}

// OpenJournal uses dir, creating it (0700) if needed.
func OpenJournal(dir string) (*Journal, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("journal dir %q: %w", dir, err)
	}
	return &Journal{dir: dir, running: map[string]int{}}, nil
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
	if err := os.Remove(e.file); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove journal entry %q: %w", e.file, err)
	}
	return nil
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
	if err := os.Remove(e.file); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove journal entry %q: %w", e.file, err)
	}
	return nil
}

// unavailable tells an error the store may not repeat later.
func unavailable(err error) bool { return errkind.Of(err) == errkind.Unavailable }

// begin writes the removal a journaled call needs before the call runs
// (so a crash in the middle leaves it behind for the next start), and
// returns what to do with it once the call has answered: keep it if the
// call failed for want of the store, drop it otherwise (done, or refused
// for good, which a replay would not change).
func (s *Server) begin(r *http.Request, path string, body []byte, log *logrus.Entry) func(error) {
	nothing := func(error) {}
	if s.o.Journal == nil || r.Header.Get(replayHeader) != "" {
		return nothing
	}
	mk, ok := journaled[path]
	if !ok {
		return nothing
	}
	rpath, req := mk(body)
	if rpath == "" && req == nil {
		return nothing
	}
	if rpath == "" {
		rpath = path
	}
	b, err := json.Marshal(req)
	if err != nil {
		return nothing
	}
	e, err := s.o.Journal.add(rpath, b)
	if err != nil {
		log.WithError(err).Error("could not journal the removal; a crash or store outage now leaves it undone")
		return nothing
	}
	return func(err error) {
		keep := err != nil && unavailable(err)
		if keep {
			log.WithField("removal", rpath[1:]).Warn("store unavailable: removal journaled, replayed when the store is back")
		}
		if rerr := s.o.Journal.settle(e, keep); rerr != nil {
			log.WithError(rerr).Error("drop journal entry")
		}
	}
}

// Replay sends every pending removal again, oldest first, and stops at
// the first one the store is still unavailable for. A removal that fails
// for another reason (the object is gone some other way) is dropped with
// a warning. It returns how many are still pending.
func (s *Server) Replay(ctx context.Context) (int, error) {
	if s.o.Journal == nil {
		return 0, nil
	}
	es, err := s.o.Journal.entries()
	if err != nil {
		return 0, err
	}
	for i, e := range es {
		if ctx.Err() != nil {
			return len(es) - i, ctx.Err()
		}
		rec := httptest.NewRecorder()
		req := httptest.NewRequestWithContext(ctx, http.MethodPost, e.Path, strings.NewReader(string(e.Body)))
		req.Header.Set(replayHeader, "1")
		s.mux.ServeHTTP(rec, req)
		log := s.o.Log.WithFields(logrus.Fields{"call": e.Path[1:], "pending_since": e.At})
		if rec.Code != http.StatusOK {
			msg := strings.TrimSpace(rec.Body.String())
			if rec.Code == status(errkind.New(errkind.Unavailable, "")) {
				return len(es) - i, nil
			}
			log.WithField("answer", msg).Warn("journaled removal failed for good; dropping it")
		} else {
			log.Info("journaled removal done")
		}
		if err := s.o.Journal.remove(e); err != nil {
			return len(es) - i, err
		}
	}
	return 0, nil
}

// replayHeader marks a replayed request, which must not be journaled again
// (Replay keeps its entry until it succeeds).
const replayHeader = "X-Vxnet-Replay"
