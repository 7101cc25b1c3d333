package meterproto

import (
	"bufio"
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// sentinels are the errors a readout can end with; each failure wraps exactly one.
var sentinels = []error{ErrRefused, ErrSilent, ErrDeadline, ErrTruncated, ErrGarbage, ErrNoETX, ErrBCC, ErrSyntax}

func requireOnly(t *testing.T, err, want error) {
	t.Helper()
	require.ErrorIs(t, err, want)
	for _, s := range sentinels {
		if s != want {
			require.NotErrorIs(t, err, s, "%v", err)
		}
	}
}

// startSim runs a simulator on a free loopback port until the test ends.
func startSim(t *testing.T, cfg SimConfig) (*Simulator, string) {
	t.Helper()
	sim, err := NewSimulator(cfg)
	require.NoError(t, err)
	addr, err := sim.Listen(context.Background(), "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { sim.Close() })
	return sim, addr
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// quick keeps the waits of failing cases short.
var quick = ReadoutOptions{IdleTimeout: 300 * time.Millisecond, Timeout: 10 * time.Second}

func TestReadoutFromSimulator(t *testing.T) {
	t.Parallel()
	sim, addr := startSim(t, SimConfig{Address: "12345678"})
	ro, err := ReadoutTCP(testCtx(t), addr, ReadoutOptions{Address: "12345678"})
	require.NoError(t, err)
	require.Equal(t, Ident{Manufacturer: "AMR", BaudChar: '5', Ident: "amrd-sim"}, ro.Ident)
	require.True(t, strings.HasSuffix(string(ro.Block), "72.7(231.0*V)\r\n!\r\n"), "%q", ro.Block)
	require.Len(t, ro.Sets, len(DefaultSimLines()))
	want, _ := ParseOBIS("1-0:1.8.0*255")
	var energy []Value
	for _, ds := range ro.Sets {
		if ds.OBISErr == nil && ds.OBIS.Matches(want) {
			energy = ds.Values
		}
	}
	require.Equal(t, []Value{{Raw: "0012345.678*kWh", Value: "0012345.678", Unit: "kWh"}}, energy)
	clock, ok, err := MeterClock(ro.Sets, time.UTC)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, time.Date(2025, 11, 14, 10, 15, 0, 0, time.UTC), clock)
	require.Equal(t, 1, sim.Sessions())

	// The empty address asks whichever meter listens.
	_, err = ReadoutTCP(testCtx(t), addr, ReadoutOptions{})
	require.NoError(t, err)
	require.Equal(t, 2, sim.Sessions())
}

func TestReadoutFaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		fault   Fault
		opt     ReadoutOptions
		wantErr error
		text    string
	}{
		{fault: FaultBadBCC, wantErr: ErrBCC, text: "waiting for data: bad block check character: expected 0x"},
		{fault: FaultTruncated, wantErr: ErrTruncated, text: "waiting for data: message truncated: the connection closed while reading the data block after"},
		{fault: FaultGarbage, wantErr: ErrGarbage, text: "waiting for data: unexpected bytes from the meter: byte 0xfe where STX should start the data message"},
		{fault: FaultNoETX, opt: ReadoutOptions{MaxBlock: 4096}, wantErr: ErrNoETX, text: "waiting for data: no ETX: the data block exceeds 4096 bytes without ETX"},
		{fault: FaultSilent, wantErr: ErrSilent, text: "meter silent for 300ms waiting for identification"},
		{fault: FaultEcho},
		{fault: FaultEcho, opt: ReadoutOptions{Echo: true}},
		{fault: FaultNone, opt: ReadoutOptions{Echo: true}, wantErr: ErrGarbage, text: "expected the echo of the request, got \"/AMR5amrd-sim\""},
		{fault: FaultEcho, opt: ReadoutOptions{WakeUp: true, WakeUpPause: time.Millisecond}},
		{fault: FaultNone, opt: ReadoutOptions{WakeUp: true, WakeUpBytes: 3, WakeUpPause: time.Millisecond}},
	}
	for _, tc := range tests {
		t.Run(tc.fault.String(), func(t *testing.T) {
			t.Parallel()
			sim, addr := startSim(t, SimConfig{Fault: tc.fault})
			opt := tc.opt
			opt.IdleTimeout, opt.Timeout = quick.IdleTimeout, quick.Timeout
			ro, err := ReadoutTCP(testCtx(t), addr, opt)
			if tc.wantErr == nil {
				require.NoError(t, err)
				require.Len(t, ro.Sets, len(DefaultSimLines()))
				require.Equal(t, 1, sim.Sessions())
				return
			}
			requireOnly(t, err, tc.wantErr)
			require.ErrorContains(t, err, tc.text)
			t.Log(err)
		})
	}
}

func TestReadoutWrongAddressIsSilent(t *testing.T) {
	t.Parallel()
	sim, addr := startSim(t, SimConfig{Address: "12345678"})
	opt := quick
	opt.Address = "87654321"
	_, err := ReadoutTCP(testCtx(t), addr, opt)
	requireOnly(t, err, ErrSilent)
	require.ErrorContains(t, err, "waiting for identification")
	require.Equal(t, 0, sim.Sessions())
}

func TestReadoutSyntaxErrorKeepsTheBlock(t *testing.T) {
	t.Parallel()
	_, addr := startSim(t, SimConfig{Lines: []string{"1.8.0(1*kWh)", "1.8.1(12"}})
	ro, err := ReadoutTCP(testCtx(t), addr, quick)
	requireOnly(t, err, ErrSyntax)
	require.ErrorContains(t, err, "parsing the data block: bad data block: line 2")
	require.Equal(t, "1.8.0(1*kWh)\r\n1.8.1(12\r\n!\r\n", string(ro.Block))
	require.Equal(t, "AMR", ro.Ident.Manufacturer)
}

func TestReadoutRefused(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close()) // nobody listens there now
	_, err = ReadoutTCP(testCtx(t), addr, quick)
	requireOnly(t, err, ErrRefused)
	require.ErrorIs(t, err, syscall.ECONNREFUSED)
	require.ErrorContains(t, err, "cannot connect to the meter at "+addr)
	t.Log(err)
}

func TestReadoutCancelled(t *testing.T) {
	t.Parallel()
	_, addr := startSim(t, SimConfig{Fault: FaultSilent})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, err := ReadoutTCP(ctx, addr, ReadoutOptions{IdleTimeout: time.Minute})
	requireOnly(t, err, ErrDeadline)
	require.ErrorIs(t, err, context.Canceled)
	require.ErrorContains(t, err, "waiting for identification")
	require.Less(t, time.Since(start), 30*time.Second, "cancellation must end the wait")
	t.Log(err)

	_, err = ReadoutTCP(ctx, addr, quick)
	requireOnly(t, err, ErrDeadline)
}

func TestReadoutCancelledDuringWakeUp(t *testing.T) {
	t.Parallel()
	_, addr := startSim(t, SimConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err := ReadoutTCP(ctx, addr, ReadoutOptions{WakeUp: true, WakeUpPause: time.Minute})
	requireOnly(t, err, ErrDeadline)
	require.ErrorContains(t, err, "pausing after the wake-up")
}

func TestReadoutSessionTimeout(t *testing.T) {
	t.Parallel()
	_, addr := startSim(t, SimConfig{Fault: FaultSilent})
	_, err := ReadoutTCP(testCtx(t), addr, ReadoutOptions{Timeout: 300 * time.Millisecond, IdleTimeout: time.Minute})
	requireOnly(t, err, ErrDeadline)
	require.ErrorContains(t, err, "waiting for identification")
	t.Log(err)
}

// TestReadoutConnSeveralTimes reads one meter twice over one connection, with the
// simulator's lines changed in between, and checks that the connection's deadlines
// are cleared after each readout.
func TestReadoutConnSeveralTimes(t *testing.T) {
	t.Parallel()
	sim, addr := startSim(t, SimConfig{})
	conn, err := Dial(testCtx(t), "tcp", addr)
	require.NoError(t, err)
	defer conn.Close()
	ro, err := ReadoutConn(testCtx(t), conn, quick)
	require.NoError(t, err)
	require.Len(t, ro.Sets, len(DefaultSimLines()))
	require.NoError(t, sim.SetLines([]string{"1.8.0(1*kWh)2.8.0(2*kWh)"}))
	time.Sleep(2 * quick.IdleTimeout) // longer than the idle timeout: no stale deadline
	ro, err = ReadoutConn(testCtx(t), conn, quick)
	require.NoError(t, err)
	require.Len(t, ro.Sets, 2)
	require.Equal(t, 2, sim.Sessions())
}

// fakeMeter runs script as the meter's end of a net.Pipe and returns the client's end:
// for answers the simulator does not give.
func fakeMeter(t *testing.T, script func(r *bufio.Reader, c net.Conn)) net.Conn {
	t.Helper()
	client, meter := net.Pipe()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer meter.Close()
		script(bufio.NewReader(meter), meter)
	}()
	t.Cleanup(func() { client.Close(); wg.Wait() })
	return client
}

func TestReadoutModeB(t *testing.T) {
	t.Parallel()
	conn := fakeMeter(t, func(r *bufio.Reader, c net.Conn) {
		line, _ := r.ReadString('\n')
		if line != "/?!\r\n" {
			return
		}
		// Mode B: the meter sends its data right after the identification.
		c.Write([]byte("/ABCEmodeB\r\n"))
		c.Write(DataMessage([]byte("1.8.0(1*kWh)\r\n!\r\n")))
	})
	ro, err := ReadoutConn(testCtx(t), conn, quick)
	require.NoError(t, err)
	require.Equal(t, byte('E'), ro.Ident.BaudChar)
	require.Len(t, ro.Sets, 1)
}

func TestReadoutNAKForIdentification(t *testing.T) {
	t.Parallel()
	conn := fakeMeter(t, func(r *bufio.Reader, c net.Conn) {
		r.ReadString('\n')
		c.Write([]byte{NAK})
		r.ReadByte() // until the client leaves
	})
	_, err := ReadoutConn(testCtx(t), conn, ReadoutOptions{IdleTimeout: time.Minute})
	requireOnly(t, err, ErrGarbage)
	require.ErrorContains(t, err, "waiting for identification: unexpected bytes from the meter: byte 0x15 where the identification should start")
}

func TestReadoutStallMidBlock(t *testing.T) {
	t.Parallel()
	stop := make(chan struct{})
	conn := fakeMeter(t, func(r *bufio.Reader, c net.Conn) {
		r.ReadString('\n')
		c.Write([]byte("/AMR5x\r\n"))
		r.ReadString('\n')
		c.Write([]byte("\x021.8.0(1"))
		<-stop
	})
	defer close(stop)
	_, err := ReadoutConn(testCtx(t), conn, quick)
	requireOnly(t, err, ErrSilent)
	require.ErrorContains(t, err, "waiting for data: reading the data block after 7 bytes, before ETX")
}

func TestReadoutRefusesBadAddress(t *testing.T) {
	t.Parallel()
	_, err := ReadoutTCP(testCtx(t), "127.0.0.1:1", ReadoutOptions{Address: "a/b"})
	require.ErrorContains(t, err, `device address "a/b"`)
}

func TestSimulatorConcurrentUse(t *testing.T) {
	t.Parallel()
	sim, addr := startSim(t, SimConfig{})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := ReadoutTCP(testCtx(t), addr, quick)
			errs <- err
		}()
	}
	for i := range 8 {
		require.NoError(t, sim.SetLines([]string{strings.Repeat("1.8.0(1)", i+1)}))
		sim.SetFault(FaultNone)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Equal(t, 8, sim.Sessions())
}

func TestSimulatorClose(t *testing.T) {
	t.Parallel()
	sim, err := NewSimulator(SimConfig{Fault: FaultSilent})
	require.NoError(t, err)
	addr, err := sim.Listen(context.Background(), "127.0.0.1:0")
	require.NoError(t, err)
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer conn.Close()
	_, err = conn.Write(RequestMessage(""))
	require.NoError(t, err)
	require.NoError(t, sim.Close()) // ends the connection it holds, too
	_, err = conn.Read(make([]byte, 1))
	require.Error(t, err)
	_, err = sim.Listen(context.Background(), "127.0.0.1:0")
	require.ErrorIs(t, err, ErrSimClosed)

	// Listen's context closes its listener.
	sim2, err := NewSimulator(SimConfig{})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	addr, err = sim2.Listen(ctx, "127.0.0.1:0")
	require.NoError(t, err)
	cancel()
	require.Eventually(t, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err != nil
	}, 5*time.Second, 10*time.Millisecond)
	require.NoError(t, sim2.Close())
}

func TestSimulatorConfig(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cfg  SimConfig
		want string
	}{
		{SimConfig{Address: "a!"}, "device address"},
		{SimConfig{Manufacturer: "A1"}, "manufacturer or ident"},
		{SimConfig{Ident: "x\r\n"}, "manufacturer or ident"},
		{SimConfig{Lines: []string{"1.8.0(1)\r\n2.8.0(2)"}}, "line 1"},
	} {
		_, err := NewSimulator(tc.cfg)
		require.ErrorContains(t, err, tc.want)
	}
	for _, name := range []string{"none", "bad-bcc", "truncated", "garbage", "no-etx", "silent", "echo"} {
		f, err := ParseFault(name)
		require.NoError(t, err)
		require.Equal(t, name, f.String())
	}
	_, err := ParseFault("flaky")
	require.ErrorContains(t, err, `unknown fault "flaky" (want one of none, bad-bcc`)
	require.Equal(t, "Fault(42)", Fault(42).String())
	require.False(t, errors.Is(nil, ErrSilent))
}
