package main

import (
	"bufio"
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/amrd/amrd/meterproto"
)

// startSimulate runs "amrd simulate" with args until the test ends and returns the
// address it listens on.
func startSimulate(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"simulate", "-listen", "127.0.0.1:0"}, args...), strings.NewReader(""), pw, io.Discard, envFunc(nil))
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	line, err := bufio.NewReader(pr).ReadString('\n')
	require.NoError(t, err)
	m := regexp.MustCompile(`meter on (\S+) \(`).FindStringSubmatch(line)
	require.NotNil(t, m, line)
	go io.Copy(io.Discard, pr)
	return m[1]
}

func TestSimulate(t *testing.T) {
	t.Parallel()
	addr := startSimulate(t, "-address", "42")
	ctx := testCtx(t)
	ro, err := meterproto.ReadoutTCP(ctx, addr, meterproto.ReadoutOptions{Address: "42"})
	require.NoError(t, err)
	require.Equal(t, meterproto.DefaultSimLines()[0]+"\r\n", string(ro.Block[:len(meterproto.DefaultSimLines()[0])+2]))
	require.Len(t, ro.Sets, len(meterproto.DefaultSimLines()))
}

func TestSimulateLinesFileAndFault(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "lines.txt")
	require.NoError(t, os.WriteFile(path, []byte("1.8.0(0000001.000*kWh)\r\n\r\n2.8.0(0000002.000*kWh)\n"), 0o600))
	addr := startSimulate(t, "-lines-file", path)
	ro, err := meterproto.ReadoutTCP(testCtx(t), addr, meterproto.ReadoutOptions{})
	require.NoError(t, err)
	require.Equal(t, "1.8.0(0000001.000*kWh)\r\n2.8.0(0000002.000*kWh)\r\n!\r\n", string(ro.Block))

	addr = startSimulate(t, "-fault", "bad-bcc")
	_, err = meterproto.ReadoutTCP(testCtx(t), addr, meterproto.ReadoutOptions{IdleTimeout: time.Second})
	require.ErrorIs(t, err, meterproto.ErrBCC)
}

func TestSimulateRefusals(t *testing.T) {
	t.Parallel()
	empty := filepath.Join(t.TempDir(), "empty.txt")
	require.NoError(t, os.WriteFile(empty, []byte("\n\n"), 0o600))
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-fault", "flaky"}, `-fault: unknown fault "flaky"`},
		{[]string{"-lines-file", filepath.Join(t.TempDir(), "missing")}, "-lines-file: open"},
		{[]string{"-lines-file", empty}, "holds no data lines"},
		{[]string{"-address", "a/b"}, `device address "a/b"`},
		{[]string{"-listen", "256.0.0.1:1"}, "listening on 256.0.0.1:1"},
		{[]string{"extra"}, `unexpected argument "extra"`},
	} {
		_, _, err := amrd(t, nil, "", append([]string{"simulate"}, tc.args...)...)
		require.ErrorContains(t, err, tc.want, tc.args)
	}
}
