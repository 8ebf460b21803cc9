package consul

import (
	"strings"
	"testing"
)

func TestParseURI(t *testing.T) {
	tests := []struct {
		uri, addr, prefix string
		bad               bool
	}{
		{uri: "consul://127.0.0.1:8500", addr: "127.0.0.1:8500", prefix: "vxnet"},
		{uri: "consul://consul.example:18500/", addr: "consul.example:18500", prefix: "vxnet"},
		{uri: "consul://h:1/team/vxnet/", addr: "h:1", prefix: "team/vxnet"},
		{uri: "consul://h", addr: "h:8500", prefix: "vxnet"},
		{uri: "consul://[::1]:8500/p", addr: "[::1]:8500", prefix: "p"},
		{uri: "http://h:8500", bad: true},
		{uri: "consul://", bad: true},
		{uri: "consul:///p", bad: true},
		{uri: "consul://user:pw@h:8500", bad: true},
		{uri: "consul://h:8500/p?token=x", bad: true},
		{uri: "consul://h:8500/a//b", bad: true},
		{uri: "consul:h", bad: true},
		{uri: "h:8500", bad: true},
	}
	for _, tt := range tests {
		addr, prefix, err := parseURI(tt.uri)
		switch {
		case tt.bad && err == nil:
			t.Errorf("parseURI(%q) = %q, %q; want an error", tt.uri, addr, prefix)
		case tt.bad && !strings.Contains(err.Error(), `"`+tt.uri+`"`):
			t.Errorf("parseURI(%q): error %q does not name the URI", tt.uri, err)
		case !tt.bad && err != nil:
			t.Errorf("parseURI(%q): %v", tt.uri, err)
		case !tt.bad && (addr != tt.addr || prefix != tt.prefix):
			t.Errorf("parseURI(%q) = %q, %q; want %q, %q", tt.uri, addr, prefix, tt.addr, tt.prefix)
		}
	}
}

func FuzzParseURI(f *testing.F) {
	for _, s := range []string{"consul://h:8500", "consul://h/p/q/", "consul://[::1]:1/x", "consul://%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, uri string) {
		addr, prefix, err := parseURI(uri)
		if err != nil {
			return
		}
		if addr == "" || prefix == "" || strings.HasPrefix(prefix, "/") || strings.HasSuffix(prefix, "/") ||
			strings.Contains(prefix, "//") {
			t.Errorf("parseURI(%q) = %q, %q", uri, addr, prefix)
		}
	})
}
