package e2e

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// killer kills a plugin with SIGKILL at a chosen point: when its log shows
// that a given callback has started (the server logs `msg=call call=<name>`
// at debug level before running it), after a short delay; or, for "timer",
// after a delay alone. Whether the kill landed inside the callback is told
// afterwards by the log: a callback that finished logs "call done" or
// "call failed".
type killer struct {
	p     *plugin
	call  string // e.g. NetworkDriver.CreateNetwork; "timer" for a plain delay
	delay time.Duration

	stop chan struct{}
	done chan struct{}

	mu       sync.Mutex
	killed   bool
	at       time.Time
	err      error
	logStart int64 // log offset when armed
	seenAt   int64 // offset of the call's line, -1 before
}

// armKill starts watching p's log for call.
func armKill(p *plugin, call string, delay time.Duration) *killer {
	k := &killer{p: p, call: call, delay: delay, stop: make(chan struct{}), done: make(chan struct{}), seenAt: -1}
	if fi, err := os.Stat(p.proc.LogPath()); err == nil {
		k.logStart = fi.Size()
	}
	go k.watch()
	return k
}

func (k *killer) watch() {
	defer close(k.done)
	if k.call == "timer" {
		select {
		case <-k.stop:
		case <-time.After(k.delay):
			k.kill()
		}
		return
	}
	needle := []byte("msg=call call=" + k.call + " ")
	f, err := os.Open(k.p.proc.LogPath())
	if err != nil {
		k.setErr(err)
		return
	}
	defer f.Close()
	off := k.logStart
	var pending []byte
	buf := make([]byte, 64<<10)
	for {
		select {
		case <-k.stop:
			return
		default:
		}
		n, err := f.ReadAt(buf, off)
		if n > 0 {
			pending = append(pending, buf[:n]...)
			if i := bytes.Index(pending, needle); i >= 0 {
				k.mu.Lock()
				k.seenAt = off - int64(len(pending)-n) + int64(i)
				k.mu.Unlock()
				time.Sleep(k.delay)
				k.kill()
				return
			}
			off += int64(n)
			if j := bytes.LastIndexByte(pending, '\n'); j >= 0 {
				pending = append([]byte(nil), pending[j+1:]...)
			}
			continue
		}
		if err != nil && err != io.EOF {
			k.setErr(err)
			return
		}
		time.Sleep(500 * time.Microsecond)
	}
}

func (k *killer) kill() {
	err := k.p.proc.Kill9()
	k.mu.Lock()
	defer k.mu.Unlock()
	k.killed, k.at, k.err = true, time.Now(), err
}

func (k *killer) setErr(err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.err = err
}

// disarm stops watching and waits; it reports whether the plugin was
// killed.
func (k *killer) disarm() (bool, error) {
	close(k.stop)
	<-k.done
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.killed, k.err
}

// wait waits up to timeout for the kill.
func (k *killer) wait(timeout time.Duration) bool {
	select {
	case <-k.done:
	case <-time.After(timeout):
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.killed
}

// midCall tells from the log whether the killed process was still inside
// the callback: no "call done"/"call failed" line for it after its start.
func (k *killer) midCall() (bool, error) {
	k.mu.Lock()
	at := k.seenAt
	k.mu.Unlock()
	if at < 0 {
		return false, nil
	}
	b, err := os.ReadFile(k.p.proc.LogPath())
	if err != nil {
		return false, err
	}
	if int64(len(b)) < at {
		return false, fmt.Errorf("log of %s shrank", k.p.h.Name)
	}
	rest := string(b[at:])
	// The log of the next start begins with the harness's banner.
	if i := strings.Index(rest, "=== "); i >= 0 {
		rest = rest[:i]
	}
	for _, end := range []string{`msg="call done" call=` + k.call + " ", `msg="call failed" call=` + k.call + " "} {
		if strings.Contains(rest, end) {
			return false, nil
		}
	}
	return true, nil
}
