package meterproto

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"
)

// Fault is a misbehaviour the Simulator can show, to test a collector against what
// real meters and links do.
type Fault int

// Faults of the Simulator.
const (
	FaultNone      Fault = iota // a correct readout
	FaultBadBCC                 // the data message's BCC is off by one bit
	FaultTruncated              // the connection closes halfway through the data block
	FaultGarbage                // binary junk instead of the data message
	FaultNoETX                  // the data block never ends: lines repeat until the client leaves
	FaultSilent                 // the connection is accepted but nothing is ever answered
	FaultEcho                   // every byte the client sends comes back first (optical head)
)

var faultNames = [...]string{"none", "bad-bcc", "truncated", "garbage", "no-etx", "silent", "echo"}

// String gives the fault's name as ParseFault reads it.
func (f Fault) String() string {
	if f < 0 || int(f) >= len(faultNames) {
		return fmt.Sprintf("Fault(%d)", int(f))
	}
	return faultNames[f]
}

// ParseFault reads a fault's name: none, bad-bcc, truncated, garbage, no-etx, silent or
// echo.
func ParseFault(s string) (Fault, error) {
	for i, n := range faultNames {
		if s == n {
			return Fault(i), nil
		}
	}
	return FaultNone, fmt.Errorf("unknown fault %q (want one of %s)", s, strings.Join(faultNames[:], ", "))
}

// SimConfig describes a simulated meter.
type SimConfig struct {
	// Address is the device address the meter answers to. A request with another
	// address gets no answer, as on a bus; the empty request address gets one always.
	// "" answers any address.
	Address string
	// Manufacturer is the three-letter code of the identification (default "AMR").
	Manufacturer string
	// Ident is the identification after the baud character (default "amrd-sim").
	Ident string
	// Lines are the data block's lines, without the "!" end line (default
	// DefaultSimLines).
	Lines []string
	// Fault is the misbehaviour, FaultNone for a correct meter.
	Fault Fault
}

// DefaultSimLines are the data lines of a typical three-phase electricity meter: the
// error register, clock, energy import and export with two tariffs, and the phase
// voltages.
func DefaultSimLines() []string {
	return []string{
		"F.F(00000000)",
		"0.9.1(101500)",
		"0.9.2(251114)",
		"1.8.0(0012345.678*kWh)",
		"1.8.1(0008234.111*kWh)",
		"1.8.2(0004111.567*kWh)",
		"2.8.0(0000321.000*kWh)",
		"32.7(230.1*V)",
		"52.7(229.8*V)",
		"72.7(231.0*V)",
	}
}

// simIdle drops a client that has sent nothing for a minute, so that a forgotten
// connection does not hold a goroutine forever.
const simIdle = time.Minute

// Simulator is a meter that answers IEC 62056-21 mode C readouts over TCP. It is safe
// for concurrent use; each connection is one optical port, and a client can read it
// several times over one connection.
type Simulator struct {
	address string
	ident   []byte // the identification line

	mu        sync.Mutex
	lines     []string
	fault     Fault
	sessions  int
	closed    bool
	listeners map[net.Listener]struct{}
	conns     map[net.Conn]struct{}
	wg        sync.WaitGroup
}

// NewSimulator checks cfg and returns a simulator that serves nothing yet: call Listen
// or Serve.
func NewSimulator(cfg SimConfig) (*Simulator, error) {
	if cfg.Manufacturer == "" {
		cfg.Manufacturer = "AMR"
	}
	if cfg.Ident == "" {
		cfg.Ident = "amrd-sim"
	}
	if err := ValidAddress(cfg.Address); err != nil {
		return nil, fmt.Errorf("simulator: %w", err)
	}
	line := []byte("/" + cfg.Manufacturer + "5" + cfg.Ident + "\r\n")
	if _, err := ParseIdent(line); err != nil {
		return nil, fmt.Errorf("simulator: manufacturer or ident: %w", err)
	}
	s := &Simulator{address: cfg.Address, ident: line, fault: cfg.Fault,
		listeners: map[net.Listener]struct{}{}, conns: map[net.Conn]struct{}{}}
	if cfg.Lines == nil {
		cfg.Lines = DefaultSimLines()
	}
	if err := s.SetLines(cfg.Lines); err != nil {
		return nil, err
	}
	return s, nil
}

// SetLines replaces the data lines from the next readout on. A line may not hold CR, LF
// or ETX (they frame the message); anything else is sent as it is, so that a test can
// send a malformed data set.
func (s *Simulator) SetLines(lines []string) error {
	for i, l := range lines {
		if strings.ContainsAny(l, "\r\n\x03") {
			return fmt.Errorf("simulator: line %d %q holds CR, LF or ETX", i+1, l)
		}
	}
	s.mu.Lock()
	s.lines = append([]string(nil), lines...)
	s.mu.Unlock()
	return nil
}

// SetFault changes the misbehaviour from the next request on.
func (s *Simulator) SetFault(f Fault) {
	s.mu.Lock()
	s.fault = f
	s.mu.Unlock()
}

// Sessions is the number of data messages sent (faulty ones included): readouts the
// meter answered up to the data.
func (s *Simulator) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions
}

// ErrSimClosed is returned by Serve and Listen after Close.
var ErrSimClosed = errors.New("simulator closed")

// Listen serves on a new TCP listener at addr ("127.0.0.1:0" for any free port) until
// ctx ends or Close, and returns the address it listens on.
func (s *Simulator) Listen(ctx context.Context, addr string) (string, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return "", fmt.Errorf("simulator: listening on %s: %w", addr, err)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return "", ErrSimClosed
	}
	s.wg.Add(1)
	s.mu.Unlock()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	go func() {
		defer s.wg.Done()
		defer stop() // forget ctx once the listener is gone, so that ctx does not hold it
		_ = s.Serve(ln)
	}()
	return ln.Addr().String(), nil
}

// Serve answers the connections of ln until ln or the simulator is closed; then it
// returns nil (ErrSimClosed when the simulator was closed before). ln is closed on
// return.
func (s *Simulator) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return ErrSimClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
		ln.Close()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("simulator: accepting: %w", err)
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return nil
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.handle(c)
	}
}

// Close stops every listener and connection and waits for their goroutines.
func (s *Simulator) Close() error {
	s.mu.Lock()
	s.closed = true
	for ln := range s.listeners {
		ln.Close()
	}
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// handle is one connection: requests are answered one after the other until the client
// leaves, as a meter returns to waiting for a request after each readout.
func (s *Simulator) handle(c net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.Close()
	}()
	r := bufio.NewReader(c)
	send := func(b []byte) bool {
		_ = c.SetWriteDeadline(time.Now().Add(simIdle))
		_, err := c.Write(b)
		return err == nil
	}
	for {
		_ = c.SetReadDeadline(time.Now().Add(simIdle))
		raw, err := simReadLine(r)
		if err != nil {
			return
		}
		s.mu.Lock()
		fault, lines := s.fault, s.lines
		s.mu.Unlock()
		if fault == FaultEcho && !send(raw) {
			return
		}
		addr, ok := parseRequest(raw)
		if !ok || (s.address != "" && addr != "" && addr != s.address) || fault == FaultSilent {
			continue
		}
		if !send(s.ident) {
			return
		}
		raw, err = simReadLine(r)
		if err != nil {
			return
		}
		if fault == FaultEcho && !send(raw) {
			return
		}
		if len(raw) < 4 || raw[0] != ACK {
			continue // not an option select: the meter waits for a new request
		}
		if raw[3] != '0' {
			// Programming mode and manufacturer modes are not simulated.
			if !send([]byte{NAK}) {
				return
			}
			continue
		}
		s.mu.Lock()
		s.sessions++
		s.mu.Unlock()
		block := []byte(strings.Join(lines, "\r\n"))
		if len(lines) > 0 {
			block = append(block, "\r\n"...)
		}
		block = append(block, "!\r\n"...)
		msg := DataMessage(block)
		switch fault {
		case FaultBadBCC:
			msg[len(msg)-1] ^= 0x01
		case FaultTruncated:
			send(msg[:1+len(block)/2])
			return
		case FaultGarbage:
			msg = []byte("\xfe\xff\x80junk\x00\r\n")
		case FaultNoETX:
			if !send(msg[:1+len(block)]) {
				return
			}
			// The lines again and again, without "!" CR LF, until the client leaves.
			filler := block[:len(block)-3]
			if len(filler) == 0 {
				filler = []byte("F.F(00000000)\r\n")
			}
			for send(filler) {
			}
			return
		}
		if !send(msg) {
			return
		}
	}
}

// simReadLine reads up to and including LF, 256 bytes at most (a request is under 40;
// the wake-up's NULs come before it).
func simReadLine(r *bufio.Reader) ([]byte, error) {
	var line []byte
	for len(line) < 256 {
		c, err := r.ReadByte()
		if err != nil {
			return nil, err
		}
		line = append(line, c)
		if c == '\n' {
			return line, nil
		}
	}
	return line, nil
}

// parseRequest reads "/?" address "!" CR LF after any NUL bytes.
func parseRequest(raw []byte) (string, bool) {
	raw = bytes.TrimLeft(raw, "\x00")
	raw = bytes.TrimSuffix(bytes.TrimSuffix(raw, []byte{'\n'}), []byte{'\r'})
	if len(raw) < 3 || !bytes.HasPrefix(raw, []byte("/?")) || raw[len(raw)-1] != '!' {
		return "", false
	}
	addr := string(raw[2 : len(raw)-1])
	return addr, ValidAddress(addr) == nil
}
