package bench

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"syscall"
	"time"
)

// The HTTP load generator of cases (b) and (c): one thread that keeps `clients`
// keep-alive connections busy, each with one request in flight, through epoll, the way
// wrk does. It shares the machine's cores with amrd and PostgreSQL, so what it spends is
// taken from what it measures: Go's net/http and fasthttp clients spend most of their CPU
// in the runtime's scheduler, netpoller and sysmon around each request's two system
// calls (fasthttp's: about twice this loop's a request, a large share of case (c)'s CPU);
// this loop makes those two calls and little else.

// loadRequest is what one connection sends next: the request's bytes (built by the
// caller into buf) and how many readings it carries.
type loadRequest func(buf []byte) (req []byte, readings int)

// loadResult is one answered request: status, body and latency.
type loadResult func(status int, body []byte, readings int, latency time.Duration) error

type loadConn struct {
	fd       int
	out      []byte // the request being written
	written  int
	in       []byte // the response read so far
	readings int
	sent     time.Time
	waitOut  bool // registered for EPOLLOUT: the socket did not take the whole request
}

// runLoad connects clients connections to addr (host:port) and, until dur has passed,
// sends each the next request as soon as its previous answer is in. It stops at the
// first error of a connection or of result. It returns the time the load ran.
func runLoad(addr string, clients int, dur time.Duration, next loadRequest, result loadResult) (time.Duration, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	tcp, err := net.ResolveTCPAddr("tcp4", addr)
	if err != nil {
		return 0, err
	}
	var sa syscall.SockaddrInet4
	copy(sa.Addr[:], tcp.IP.To4())
	sa.Port = tcp.Port
	ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return 0, fmt.Errorf("epoll: %w", err)
	}
	defer syscall.Close(ep)
	conns := make([]*loadConn, clients)
	defer func() {
		for _, c := range conns {
			if c != nil {
				_ = syscall.Close(c.fd)
			}
		}
	}()
	for i := range conns {
		fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			return 0, fmt.Errorf("socket: %w", err)
		}
		conns[i] = &loadConn{fd: fd}
		if err := syscall.Connect(fd, &sa); err != nil {
			return 0, fmt.Errorf("connecting to %s: %w", addr, err)
		}
		_ = syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
		if err := syscall.SetNonblock(fd, true); err != nil {
			return 0, err
		}
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(i)}
		if err := syscall.EpollCtl(ep, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
			return 0, fmt.Errorf("epoll_ctl: %w", err)
		}
	}
	start := time.Now()
	for i, c := range conns {
		if err := c.send(ep, i, next); err != nil {
			return 0, err
		}
	}
	events := make([]syscall.EpollEvent, clients)
	buf := make([]byte, 64<<10)
	open := clients
	for open > 0 {
		n, err := syscall.EpollWait(ep, events, 1000)
		if err != nil {
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			return 0, fmt.Errorf("epoll_wait: %w", err)
		}
		if n == 0 && time.Since(start) > dur+time.Minute {
			return 0, errors.New("no answer within a minute")
		}
		for _, ev := range events[:n] {
			i := int(ev.Fd)
			c := conns[i]
			if ev.Events&syscall.EPOLLOUT != 0 && c.written < len(c.out) {
				if err := c.flush(ep, i); err != nil {
					return 0, err
				}
			}
			if ev.Events&(syscall.EPOLLIN|syscall.EPOLLHUP|syscall.EPOLLERR) == 0 {
				continue
			}
			status, body, err := c.receive(buf)
			if err != nil {
				return 0, err
			}
			if body == nil {
				continue // the answer is not complete yet
			}
			if err := result(status, body, c.readings, time.Since(c.sent)); err != nil {
				return 0, err
			}
			c.in = c.in[:0]
			if time.Since(start) >= dur {
				open--
				continue
			}
			if err := c.send(ep, i, next); err != nil {
				return 0, err
			}
		}
	}
	return time.Since(start), nil
}

// send starts the connection's next request.
func (c *loadConn) send(ep, i int, next loadRequest) error {
	c.out, c.readings = next(c.out[:0])
	c.written = 0
	c.sent = time.Now()
	return c.flush(ep, i)
}

// flush writes what the socket takes of the request; the rest waits for EPOLLOUT.
func (c *loadConn) flush(ep, i int) error {
	for c.written < len(c.out) {
		n, err := syscall.Write(c.fd, c.out[c.written:])
		if errors.Is(err, syscall.EAGAIN) {
			if c.waitOut {
				return nil
			}
			c.waitOut = true
			ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLOUT, Fd: int32(i)}
			return syscall.EpollCtl(ep, syscall.EPOLL_CTL_MOD, c.fd, &ev)
		}
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("sending a request: %w", err)
		}
		c.written += n
	}
	if c.waitOut {
		c.waitOut = false
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(i)}
		return syscall.EpollCtl(ep, syscall.EPOLL_CTL_MOD, c.fd, &ev)
	}
	return nil
}

// receive reads what arrived; it returns the body once the whole answer is in.
func (c *loadConn) receive(buf []byte) (status int, body []byte, err error) {
	for {
		n, err := syscall.Read(c.fd, buf)
		if errors.Is(err, syscall.EAGAIN) {
			break
		}
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return 0, nil, fmt.Errorf("reading an answer: %w", err)
		}
		if n == 0 {
			return 0, nil, errors.New("amrd closed a connection")
		}
		c.in = append(c.in, buf[:n]...)
		if n < len(buf) {
			break
		}
	}
	return parseResponse(c.in)
}

// parseResponse reads an HTTP/1.1 answer with a Content-Length (all of amrd's are):
// body is nil while it is incomplete.
func parseResponse(in []byte) (status int, body []byte, err error) {
	end := bytes.Index(in, []byte("\r\n\r\n"))
	if end < 0 {
		return 0, nil, nil
	}
	head := in[:end]
	line, rest, _ := bytes.Cut(head, []byte("\r\n"))
	if !bytes.HasPrefix(line, []byte("HTTP/1.1 ")) || len(line) < 12 {
		return 0, nil, fmt.Errorf("not an HTTP/1.1 answer: %.80q", line)
	}
	status, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, nil, fmt.Errorf("bad status line %.80q", line)
	}
	length := -1
	for len(rest) > 0 {
		var h []byte
		h, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		name, value, ok := bytes.Cut(h, []byte(":"))
		if !ok {
			continue
		}
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(bytes.TrimSpace(value))); err != nil {
				return 0, nil, fmt.Errorf("bad Content-Length %.40q", value)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			return 0, nil, errors.New("a chunked answer: the load client reads only Content-Length")
		}
	}
	if length < 0 {
		return 0, nil, errors.New("an answer without Content-Length")
	}
	if len(in) < end+4+length {
		return 0, nil, nil
	}
	if len(in) > end+4+length {
		return 0, nil, errors.New("more bytes than one answer: the load client sends one request at a time")
	}
	return status, in[end+4:], nil
}

// accepted reads the "accepted" count of an ingestion report without decoding the rest.
func accepted(body []byte) (int64, bool) {
	_, after, ok := bytes.Cut(body, []byte(`"accepted":`))
	if !ok {
		return 0, false
	}
	i := 0
	for i < len(after) && after[i] >= '0' && after[i] <= '9' {
		i++
	}
	n, err := strconv.ParseInt(string(after[:i]), 10, 64)
	return n, err == nil
}
