package liveness

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"net"
	"net/netip"
	"time"
)

// Ping sends one ICMP echo request to addr from the host's network
// namespace and tells whether the echo reply came within timeout. It needs
// a raw socket (root, or CAP_NET_RAW); a failure to open one counts as an
// answer, so a plugin that cannot probe never removes anybody's entries.
func Ping(ctx context.Context, addr netip.Addr, timeout time.Duration) bool {
	network, laddr, req, reply := "ip4:icmp", "0.0.0.0", byte(8), byte(0)
	if addr.Is6() && !addr.Is4In6() {
		network, laddr, req, reply = "ip6:ipv6-icmp", "::", 128, 129
	}
	c, err := net.ListenPacket(network, laddr)
	if err != nil {
		return true
	}
	defer c.Close()
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = c.SetDeadline(deadline)
	var idb [4]byte
	_, _ = rand.Read(idb[:])
	msg := make([]byte, 16)
	msg[0] = req
	copy(msg[4:8], idb[:]) // identifier and sequence number
	copy(msg[8:], "vxnet-lv")
	if req == 8 { // ICMPv6 checksums are the kernel's
		binary.BigEndian.PutUint16(msg[2:], checksum(msg))
	}
	dst := &net.IPAddr{IP: net.IP(addr.Unmap().AsSlice())}
	if _, err := c.WriteTo(msg, dst); err != nil {
		return false // no route (link down): no answer
	}
	buf := make([]byte, 1500)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			return false
		}
		ip, ok := from.(*net.IPAddr)
		if !ok || !ip.IP.Equal(dst.IP) || n < 8 || buf[0] != reply {
			continue
		}
		if [4]byte(buf[4:8]) == idb {
			return true
		}
	}
}

// checksum is the Internet checksum of b (RFC 1071).
func checksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
