package e2e

import (
	"reflect"
	"testing"
)

// TestParsePing: a lost packet is one a later packet overtook; the last
// packet sent may be in flight when the ping is interrupted.
func TestParsePing(t *testing.T) {
	const head = "PING 198.19.14.3 (198.19.14.3): 56 data bytes\n"
	reply := func(seq string) string { return "64 bytes from 198.19.14.3: seq=" + seq + " ttl=64 time=0.123 ms\n" }
	for _, tc := range []struct {
		name, out string
		want      pingResult
	}{
		{"all answered", head + reply("0") + reply("1") + reply("2") + "\n--- 198.19.14.3 ping statistics ---\n3 packets transmitted, 3 packets received, 0% packet loss\n",
			pingResult{Sent: 3, Recv: 3}},
		{"last in flight", head + reply("0") + reply("1") + "\n--- 198.19.14.3 ping statistics ---\n3 packets transmitted, 2 packets received, 33% packet loss\n",
			pingResult{Sent: 3, Recv: 2}},
		{"a gap", head + reply("0") + reply("2") + reply("3") + "\n--- 198.19.14.3 ping statistics ---\n4 packets transmitted, 3 packets received, 25% packet loss\n",
			pingResult{Sent: 4, Recv: 3, Lost: 1, Missing: []int{1}}},
		{"cut off at the end", head + reply("0") + "\n--- 198.19.14.3 ping statistics ---\n4 packets transmitted, 1 packets received, 75% packet loss\n",
			pingResult{Sent: 4, Recv: 1, Lost: 2, Missing: []int{1, 2}}},
		{"a duplicate", head + reply("0") + reply("0") + " (DUP!)\n" + reply("1") + "\n--- 198.19.14.3 ping statistics ---\n2 packets transmitted, 2 packets received, +1 duplicates, 0% packet loss\n",
			pingResult{Sent: 2, Recv: 2}},
	} {
		got, err := parsePing(tc.out)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %+v, want %+v", tc.name, got, tc.want)
		}
	}
	if _, err := parsePing(head + reply("0")); err == nil {
		t.Error("output without statistics: no error")
	}
}
