package meterproto

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// Errors of a readout session, besides the codec's (ErrGarbage, ErrTruncated, ErrNoETX,
// ErrBCC, ErrSyntax).
var (
	// ErrRefused means no connection to the meter could be made (refused, no route,
	// dial timeout); the network error is wrapped too.
	ErrRefused = errors.New("cannot connect to the meter")
	// ErrSilent means the meter sent nothing for ReadoutOptions.IdleTimeout.
	ErrSilent = errors.New("meter silent")
	// ErrDeadline means the session's Timeout ran out or its context ended (the
	// context's error is wrapped too).
	ErrDeadline = errors.New("readout deadline")
)

// ReadoutOptions tune a readout session. DefaultReadoutOptions holds the defaults; a
// number or duration left at zero takes its default (Address, WakeUp and Echo are taken
// as given).
type ReadoutOptions struct {
	// Address is the device address sent in the request ("" asks any meter).
	Address string
	// Timeout bounds the whole session, from the first byte sent to the BCC
	// (default 30 s: a 10 KiB readout at 9600 Bd takes about 11 s, 10 bits a byte).
	Timeout time.Duration
	// IdleTimeout bounds each wait for the meter's next bytes (default 5 s: a meter
	// answers within 1.5 s, IEC 62056-21's longest reaction time, plus network delay).
	IdleTimeout time.Duration
	// WakeUp sends WakeUpBytes NUL bytes, then pauses WakeUpPause, before the request:
	// battery meters sleep until their optical port sees activity.
	WakeUp bool
	// WakeUpBytes is the number of NUL bytes of the wake-up (default 64: 2.1 s at
	// 300 Bd and 10 bits a byte, the length battery meters expect).
	WakeUpBytes int
	// WakeUpPause is the pause after the wake-up (default 1.5 s, for the meter to be
	// ready before the request).
	WakeUpPause time.Duration
	// MaxBlock bounds the data block (default DefaultMaxBlock).
	MaxBlock int
	// Echo declares a link that echoes the client's own bytes (a half-duplex optical
	// head): the echo of the request and of the option select must arrive and is
	// skipped. Without it an echo is still recognised: a first line equal to the
	// request switches echo handling on for the session.
	Echo bool
}

// DefaultReadoutOptions are the options documented on each field.
func DefaultReadoutOptions() ReadoutOptions {
	return ReadoutOptions{Timeout: 30 * time.Second, IdleTimeout: 5 * time.Second, WakeUpBytes: 64,
		WakeUpPause: 1500 * time.Millisecond, MaxBlock: DefaultMaxBlock}
}

func (o ReadoutOptions) withDefaults() ReadoutOptions {
	d := DefaultReadoutOptions()
	if o.Timeout <= 0 {
		o.Timeout = d.Timeout
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = d.IdleTimeout
	}
	if o.WakeUpBytes <= 0 {
		o.WakeUpBytes = d.WakeUpBytes
	}
	if o.WakeUpPause <= 0 {
		o.WakeUpPause = d.WakeUpPause
	}
	if o.MaxBlock <= 0 {
		o.MaxBlock = d.MaxBlock
	}
	return o
}

// Readout is what a meter sent in a data readout.
type Readout struct {
	Ident Ident
	Block []byte    // the data block, without STX, ETX and BCC
	Sets  []DataSet // the block's data sets
}

// Dial connects to a meter (or the TCP port of its modem or converter). Errors wrap
// ErrRefused and the network error, or ErrDeadline when ctx ended.
func Dial(ctx context.Context, network, address string) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, address)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w: connecting to %s: %w", ErrDeadline, address, err)
		}
		return nil, fmt.Errorf("%w at %s: %w", ErrRefused, address, err)
	}
	return conn, nil
}

// ReadoutTCP connects to addr, reads the meter with ReadoutConn and closes the
// connection. The dial counts against opt.Timeout.
func ReadoutTCP(ctx context.Context, addr string, opt ReadoutOptions) (Readout, error) {
	opt = opt.withDefaults()
	if err := ValidAddress(opt.Address); err != nil {
		return Readout{}, fmt.Errorf("reading the meter: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, opt.Timeout)
	defer cancel()
	conn, err := Dial(ctx, "tcp", addr)
	if err != nil {
		return Readout{}, err
	}
	defer conn.Close()
	return ReadoutConn(ctx, conn, opt)
}

// ReadoutConn runs a mode C data readout on conn: request, identification, option
// select (data readout at the announced baud character; skipped for a mode B meter,
// which sends its data right away), data message, parse. conn is not closed; its
// deadlines are cleared at the end unless ctx ended. A parse error comes with the
// Readout (Ident and Block set) so that the block can be logged.
//
// Errors wrap one of ErrSilent, ErrDeadline, ErrTruncated, ErrGarbage, ErrNoETX, ErrBCC
// or ErrSyntax and say at which step they happened.
func ReadoutConn(ctx context.Context, conn net.Conn, opt ReadoutOptions) (Readout, error) {
	opt = opt.withDefaults()
	if err := ValidAddress(opt.Address); err != nil {
		return Readout{}, fmt.Errorf("reading the meter: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return Readout{}, fmt.Errorf("%w: before the request: %w", ErrDeadline, context.Cause(ctx))
	}
	dl := time.Now().Add(opt.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(dl) {
		dl = d
	}
	s := &session{ctx: ctx, conn: conn, opt: opt, deadline: dl}
	s.in = bufio.NewReader(s)
	if err := conn.SetWriteDeadline(dl); err != nil {
		return Readout{}, fmt.Errorf("setting the write deadline: %w", err)
	}
	stop := context.AfterFunc(ctx, s.abort)
	defer func() {
		if stop() {
			_ = conn.SetDeadline(time.Time{})
		}
	}()
	return s.run()
}

// session is one readout. It is its own reader: every Read sets the idle deadline,
// capped by the session's.
type session struct {
	ctx      context.Context
	conn     net.Conn
	opt      ReadoutOptions
	deadline time.Time
	in       *bufio.Reader

	mu      sync.Mutex
	aborted bool // ctx ended: deadlines stay in the past
	capped  bool // the last read waited until the session deadline, not an idle one
}

func (s *session) abort() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.aborted = true
	// A deadline in the past wakes a Read or Write blocked now and fails later ones.
	_ = s.conn.SetDeadline(time.Unix(1, 0))
}

func (s *session) Read(p []byte) (int, error) {
	s.mu.Lock()
	if s.aborted {
		s.mu.Unlock()
		return 0, os.ErrDeadlineExceeded
	}
	d := time.Now().Add(s.opt.IdleTimeout)
	s.capped = !d.Before(s.deadline)
	if s.capped {
		d = s.deadline
	}
	err := s.conn.SetReadDeadline(d)
	s.mu.Unlock()
	if err != nil {
		return 0, err
	}
	return s.conn.Read(p)
}

func (s *session) run() (Readout, error) {
	var out Readout
	if s.opt.WakeUp {
		if err := s.write("sending the wake-up", make([]byte, s.opt.WakeUpBytes)); err != nil {
			return out, err
		}
		t := time.NewTimer(s.opt.WakeUpPause)
		select {
		case <-t.C:
		case <-s.ctx.Done():
			t.Stop()
			return out, fmt.Errorf("%w: pausing after the wake-up: %w", ErrDeadline, context.Cause(s.ctx))
		}
	}
	req := RequestMessage(s.opt.Address)
	if err := s.write("sending the request", req); err != nil {
		return out, err
	}

	const step1 = "waiting for identification"
	echo := false
	var line []byte
	for {
		var err error
		if line, err = readLine(s.in, 128); err != nil {
			return out, s.fail(step1, err)
		}
		if !echo && bytes.Equal(line, req[:len(req)-2]) {
			echo = true
			continue
		}
		break
	}
	if s.opt.Echo && !echo {
		return out, fmt.Errorf("%w: %s: expected the echo of the request, got %q", ErrGarbage, step1, line)
	}
	id, err := ParseIdent(line)
	if err != nil {
		return out, fmt.Errorf("%s: %w", step1, err)
	}
	out.Ident = id

	const step2 = "waiting for data"
	if id.ModeC() {
		sel := OptionSelect(id.BaudChar, '0')
		if err := s.write("sending the option select", sel); err != nil {
			return out, err
		}
		if echo {
			got := make([]byte, len(sel))
			if _, err := io.ReadFull(s.in, got); err != nil {
				return out, s.fail("waiting for the echo of the option select", err)
			}
			if !bytes.Equal(got, sel) {
				return out, fmt.Errorf("%w: expected the echo of the option select %q, got %q", ErrGarbage, sel, got)
			}
		}
	}
	block, err := ReadDataMessage(s.in, s.opt.MaxBlock)
	if err != nil {
		return out, s.fail(step2, err)
	}
	out.Block = block
	if out.Sets, err = ParseDataBlock(block); err != nil {
		return out, fmt.Errorf("parsing the data block: %w", err)
	}
	return out, nil
}

func (s *session) write(step string, b []byte) error {
	if _, err := s.conn.Write(b); err != nil {
		if s.ctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded) {
			return s.fail(step, err)
		}
		return fmt.Errorf("%s: %w", step, err)
	}
	return nil
}

// fail names what went wrong at a step: the context or the session deadline ending it,
// a meter that went quiet, the connection ending, or a codec error as it is.
func (s *session) fail(step string, err error) error {
	if s.ctx.Err() != nil {
		return fmt.Errorf("%w: %s: %w", ErrDeadline, step, context.Cause(s.ctx))
	}
	for _, sentinel := range []error{ErrTruncated, ErrGarbage, ErrNoETX, ErrBCC, ErrSyntax} {
		if errors.Is(err, sentinel) {
			return fmt.Errorf("%s: %w", step, err)
		}
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		s.mu.Lock()
		capped := s.capped
		s.mu.Unlock()
		if capped || !time.Now().Before(s.deadline) {
			return fmt.Errorf("%w: the %s session ran out %s: %w", ErrDeadline, s.opt.Timeout, step, err)
		}
		return fmt.Errorf("%w for %s %s: %w", ErrSilent, s.opt.IdleTimeout, step, err)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: the connection closed %s", ErrTruncated, step)
	}
	// A reset or another failure of the connection: the answer is cut short.
	return fmt.Errorf("%w: %s: %w", ErrTruncated, step, err)
}

// readLine reads one line starting with '/' (an identification, or the echo of the
// request), skipping the NUL, CR and LF bytes before it (a wake-up's echo, blank lines),
// and returns it without its CR LF. Another first byte (a NAK, junk) or a line longer
// than max bytes is an ErrGarbage error at once, rather than a wait for a line end that
// may never come.
func readLine(r *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		c, err := r.ReadByte()
		if err != nil {
			return nil, err
		}
		switch {
		case c == '\n':
			if len(line) > 0 {
				return bytes.TrimSuffix(line, []byte{'\r'}), nil
			}
		case len(line) == 0 && (c == 0 || c == '\r'):
		case len(line) == 0 && c != '/':
			return nil, fmt.Errorf("%w: byte 0x%02x where the identification should start", ErrGarbage, c)
		case len(line) == max:
			return nil, fmt.Errorf("%w: a line longer than %d bytes", ErrGarbage, max)
		default:
			line = append(line, c)
		}
	}
}
