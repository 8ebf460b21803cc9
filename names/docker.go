package names

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

// Docker is a minimal client of the local Docker API: the few reads the
// Syncer needs, with plain net/http (no Docker client library).
type Docker struct {
	http *http.Client // every call but Events
	long *http.Client // Events: a stream without a deadline
	base string       // "http://docker" for a unix socket
}

// errNotFound is a 404 from Docker.
var errNotFound = errors.New("not found")

// NewDocker returns a client of the Docker API at host: unix:///path or
// tcp://host:port (plain HTTP).
func NewDocker(host string) (*Docker, error) {
	u, err := url.Parse(host)
	if err != nil {
		return nil, fmt.Errorf("docker host %q: %w", host, err)
	}
	var dial func(ctx context.Context, _, _ string) (net.Conn, error)
	base := "http://docker"
	switch {
	case u.Scheme == "unix" && u.Path != "":
		dial = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", u.Path)
		}
	case u.Scheme == "tcp" && u.Host != "":
		base = "http://" + u.Host
	default:
		return nil, fmt.Errorf("docker host %q: want unix:///path/docker.sock or tcp://host:port", host)
	}
	tr := &http.Transport{DialContext: dial, MaxIdleConns: 4, IdleConnTimeout: 30 * time.Second}
	return &Docker{http: &http.Client{Transport: tr, Timeout: 10 * time.Second}, long: &http.Client{Transport: tr}, base: base}, nil
}

// Endpoint is one entry of a network's Containers.
type Endpoint struct {
	EndpointID  string
	IPv4Address string
	IPv6Address string
}

// NetworkInfo is what the Syncer reads of GET /networks/<id>.
type NetworkInfo struct {
	ID         string
	Name       string
	IPAM       struct{ Config []struct{ Subnet string } }
	Containers map[string]Endpoint // container ID → its endpoint
}

// ContainerInfo is what the Syncer reads of GET /containers/<id>/json.
type ContainerInfo struct {
	ID              string
	Name            string // "/name"
	NetworkSettings struct {
		Networks map[string]struct {
			NetworkID  string
			EndpointID string
			Aliases    []string
			DNSNames   []string // Docker 26 on: name, aliases, short ID
		}
	}
}

// Network reads a network by ID or name; a missing one wraps errNotFound.
func (d *Docker) Network(ctx context.Context, id string) (*NetworkInfo, error) {
	var n NetworkInfo
	if err := d.get(ctx, "/networks/"+url.PathEscape(id), &n); err != nil {
		return nil, err
	}
	return &n, nil
}

// Container reads a container; a missing one wraps errNotFound.
func (d *Docker) Container(ctx context.Context, id string) (*ContainerInfo, error) {
	var c ContainerInfo
	if err := d.get(ctx, "/containers/"+url.PathEscape(id)+"/json", &c); err != nil {
		return nil, err
	}
	return &c, nil
}

// Ping checks that the API answers.
func (d *Docker) Ping(ctx context.Context) error {
	return d.get(ctx, "/_ping", nil)
}

func (d *Docker) get(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.base+path, nil)
	if err != nil {
		return err
	}
	resp, err := d.http.Do(req)
	if err != nil {
		return fmt.Errorf("docker GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return fmt.Errorf("docker GET %s: %w", path, errNotFound)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("docker GET %s: %s: %s", path, resp.Status, strings.TrimSpace(string(b)))
	}
	if v == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("docker GET %s: decode: %w", path, err)
	}
	return nil
}

// Events calls fn for each network connect/disconnect and container
// start/rename event until ctx ends or the stream breaks (the error says
// why; nil only when ctx ended). fn runs on the reading goroutine.
func (d *Docker) Events(ctx context.Context, fn func()) error {
	filters := `{"type":["network","container"],"event":["connect","disconnect","start","rename"]}`
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.base+"/events?filters="+url.QueryEscape(filters), nil)
	if err != nil {
		return err
	}
	resp, err := d.long.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("docker GET /events: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("docker GET /events: %s", resp.Status)
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
		return fmt.Errorf("docker events stream: %w", err)
	}
	return errors.New("docker events stream ended")
}
