// Command vxprobe is the e2e test image's network probe, built static
// (CGO_ENABLED=0) into the image as /bin/vxprobe, for what busybox cannot
// do: send and receive UDP broadcast and multicast on one interface, and
// measure a TCP stream's throughput.
//
//	vxprobe send   -to 255.255.255.255:7000 -dev eth0 -msg hello [-n 5]
//	vxprobe recv   -port 7000 [-group 239.1.1.1 -dev eth0] -want hello [-wait 10s]
//	vxprobe sink   -port 5001
//	vxprobe stream -to 198.19.1.3:5001 [-for 3s]
//
// recv prints "ready" once it listens and exits 0 when a datagram holding
// -want arrived, 1 otherwise; stream prints "bytes N mbit_s X".
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fail(fmt.Errorf("usage: vxprobe send|recv|sink|stream [flags]"))
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	to := fs.String("to", "", "destination address:port")
	dev := fs.String("dev", "eth0", "interface to send from / join the group on")
	msg := fs.String("msg", "vxprobe", "datagram payload")
	n := fs.Int("n", 5, "datagrams to send, 200 ms apart")
	port := fs.Int("port", 0, "port to listen on")
	group := fs.String("group", "", "multicast group to join")
	want := fs.String("want", "", "payload recv waits for")
	wait := fs.Duration("wait", 10*time.Second, "how long recv waits")
	dur := fs.Duration("for", 3*time.Second, "how long stream sends")
	if err := fs.Parse(os.Args[2:]); err != nil {
		fail(err)
	}
	var err error
	switch os.Args[1] {
	case "send":
		err = send(*to, *dev, *msg, *n)
	case "recv":
		err = recv(*port, *group, *dev, *want, *wait)
	case "sink":
		err = sink(*port)
	case "stream":
		err = stream(*to, *dur)
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "vxprobe:", err)
	os.Exit(1)
}

// send sends n datagrams from a socket bound to dev (so broadcast and
// multicast leave through it, not the default route) with broadcast
// allowed.
func send(to, dev, msg string, n int) error {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptString(int(fd), syscall.SOL_SOCKET, syscall.SO_BINDTODEVICE, dev)
			if serr == nil {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_BROADCAST, 1)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp4", ":0")
	if err != nil {
		return fmt.Errorf("socket on %s: %w", dev, err)
	}
	defer pc.Close()
	dst, err := net.ResolveUDPAddr("udp4", to)
	if err != nil {
		return err
	}
	for i := range n {
		if i > 0 {
			time.Sleep(200 * time.Millisecond)
		}
		if _, err := pc.WriteTo([]byte(msg), dst); err != nil {
			return fmt.Errorf("send to %s via %s: %w", dst, dev, err)
		}
	}
	return nil
}

// recv waits for a datagram holding want on port (joining group on dev
// when given).
func recv(port int, group, dev, want string, wait time.Duration) error {
	var conn *net.UDPConn
	var err error
	if group != "" {
		ifi, ierr := net.InterfaceByName(dev)
		if ierr != nil {
			return ierr
		}
		conn, err = net.ListenMulticastUDP("udp4", ifi, &net.UDPAddr{IP: net.ParseIP(group), Port: port})
	} else {
		conn, err = net.ListenUDP("udp4", &net.UDPAddr{Port: port})
	}
	if err != nil {
		return fmt.Errorf("listen on port %d (group %q): %w", port, group, err)
	}
	defer conn.Close()
	fmt.Println("ready")
	if err := conn.SetReadDeadline(time.Now().Add(wait)); err != nil {
		return err
	}
	buf := make([]byte, 2048)
	for {
		k, from, err := conn.ReadFromUDP(buf)
		if err != nil {
			return fmt.Errorf("no datagram %q on port %d within %s: %w", want, port, wait, err)
		}
		if bytes.Contains(buf[:k], []byte(want)) {
			fmt.Printf("got %q from %s\n", buf[:k], from)
			return nil
		}
	}
}

// sink accepts TCP connections on port and discards what they send.
func sink(port int) error {
	l, err := net.Listen("tcp", fmt.Sprintf(":%d", port))
	if err != nil {
		return err
	}
	for {
		c, err := l.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			_, _ = io.Copy(io.Discard, c)
		}()
	}
}

// stream sends zeros to a sink for d and prints the throughput.
func stream(to string, d time.Duration) error {
	c, err := net.DialTimeout("tcp", to, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	buf := make([]byte, 64<<10)
	start := time.Now()
	var sent int64
	for time.Since(start) < d {
		k, err := c.Write(buf)
		sent += int64(k)
		if err != nil {
			return fmt.Errorf("stream to %s after %d bytes: %w", to, sent, err)
		}
	}
	secs := time.Since(start).Seconds()
	fmt.Printf("bytes %d mbit_s %.1f\n", sent, float64(sent)*8/1e6/secs)
	return nil
}
