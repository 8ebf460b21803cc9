package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// hostID is this host's identity in the cluster: --host-id if given;
// else the one kept in --host-id-file; else, at first start, the advertise
// address, which is then kept there. Keeping it means a host whose address
// changes is still the same host: its records, memberships and leases stay
// its own, and reconcile does not take them for another host's.
func hostID(c *config, advertise string) (string, error) {
	if c.HostID != "" {
		return c.HostID, nil
	}
	if c.HostIDFile == "" {
		return advertise, nil
	}
	b, err := os.ReadFile(c.HostIDFile)
	if err == nil {
		id := strings.TrimSpace(string(b))
		if err := validHostID(id); err != nil {
			return "", fmt.Errorf("host ID file %q: %w (fix or remove it; removing makes this a new host)", c.HostIDFile, err)
		}
		return id, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read host ID: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(c.HostIDFile), 0o755); err != nil {
		return "", fmt.Errorf("keep host ID: %w", err)
	}
	tmp := c.HostIDFile + ".tmp"
	if err := os.WriteFile(tmp, []byte(advertise+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("keep host ID: %w", err)
	}
	if err := os.Rename(tmp, c.HostIDFile); err != nil {
		return "", fmt.Errorf("keep host ID: %w", err)
	}
	return advertise, nil
}

// validHostID accepts what can be one store key segment.
func validHostID(id string) error {
	if id == "" || len(id) > 128 {
		return fmt.Errorf("host ID %q: want 1 to 128 characters", id)
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune(".-_:", c)) {
			return fmt.Errorf("host ID %q: want letters, digits and . - _ : only", id)
		}
	}
	return nil
}
