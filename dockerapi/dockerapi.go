// Package dockerapi is vxnet's one client of the local Docker Engine API:
// plain HTTP over the daemon's unix socket (or tcp://), no Docker client
// library. Packages names (container names for the resolver) and swarm
// (services' endpoint modes, task containers) each decode the few reads
// they make; this package owns the address, the transport and the error
// shapes, so one flag (`--docker-host`) and one connection pool serve both.
//
// Paths carry no API version, so the daemon answers in its own (20.10 and
// 26.1 alike). Every error names the daemon's address and the path.
package dockerapi

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DefaultHost is the local Docker API on Debian and most distributions
// (/var/run is a symlink to /run), and where the managed plugin's mount
// "docker" puts the host's socket.
const DefaultHost = "unix:///run/docker.sock"

// ErrNotFound is wrapped by a 404 answer.
var ErrNotFound = errors.New("not found")

// Client talks to one Docker daemon.
type Client struct {
	host string       // as given: unix:///path or tcp://host:port
	base string       // URL prefix of every request
	http *http.Client // every call but Events
	long *http.Client // Events: a stream without a deadline
}

// ParseHost checks host (unix:///absolute/path or tcp://host:port) and
// returns the unix socket path ("" for tcp) and the HTTP base URL.
func ParseHost(host string) (socket, base string, err error) {
	u, err := url.Parse(host)
	switch {
	case err != nil:
	case u.Scheme == "unix" && strings.HasPrefix(u.Path, "/") && u.Host == "" && u.RawQuery == "":
		return u.Path, "http://docker", nil
	case u.Scheme == "tcp" && u.Host != "" && u.Port() != "" && (u.Path == "" || u.Path == "/") && u.RawQuery == "":
		return "", "http://" + u.Host, nil
	}
	return "", "", fmt.Errorf("docker host %q: want unix:///path/docker.sock or tcp://host:port", host)
}

// New returns a client of the Docker API at host (see ParseHost). It does
// not connect: a missing daemon shows in the first call's error.
func New(host string) (*Client, error) {
	socket, base, err := ParseHost(host)
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{MaxIdleConns: 4, IdleConnTimeout: 30 * time.Second}
	if socket != "" {
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", socket)
		}
	}
	return &Client{host: host, base: base, http: &http.Client{Transport: tr, Timeout: 10 * time.Second}, long: &http.Client{Transport: tr}}, nil
}

// Host is the address the client was made for.
func (c *Client) Host() string { return c.host }

// Get decodes the JSON answer to GET path?query into v (nil: the body is
// discarded). A 404 wraps ErrNotFound.
func (c *Client) Get(ctx context.Context, path string, query url.Values, v any) error {
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("docker API GET %s on %s: %w", path, c.host, err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("docker API GET %s on %s: %w", path, c.host, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return fmt.Errorf("docker API GET %s on %s: %w", path, c.host, ErrNotFound)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("docker API GET %s on %s: %s: %s", path, c.host, resp.Status, strings.TrimSpace(string(b)))
	}
	if v == nil {
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(v); err != nil {
		return fmt.Errorf("docker API GET %s on %s: decode: %w", path, c.host, err)
	}
	return nil
}

// Events calls fn for each event matching filters (Docker's JSON filter
// map, e.g. {"type":["network"]}) until ctx ends or the stream breaks
// (the error says why; nil only when ctx ended). fn runs on the reading
// goroutine.
func (c *Client) Events(ctx context.Context, filters map[string][]string, fn func()) error {
	f, err := json.Marshal(filters)
	if err != nil {
		return fmt.Errorf("docker API events filters: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/events?filters="+url.QueryEscape(string(f)), nil)
	if err != nil {
		return fmt.Errorf("docker API GET /events on %s: %w", c.host, err)
	}
	resp, err := c.long.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("docker API GET /events on %s: %w", c.host, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("docker API GET /events on %s: %s", c.host, resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fn()
	}
	if ctx.Err() != nil {
		return nil
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("docker API event stream on %s: %w", c.host, err)
	}
	return fmt.Errorf("docker API event stream on %s ended", c.host)
}
