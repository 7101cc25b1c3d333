package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/amrd/amrd/meterproto"
)

// simulateCmd runs a simulated IEC 62056-21 meter on TCP until ctx ends: a device to
// point a collector or a demo at.
func simulateCmd(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("simulate", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:9601", "TCP address to listen on")
	address := fs.String("address", "", "device address the meter answers to (empty: any)")
	linesFile := fs.String("lines-file", "", "file of data lines, one a line (default: a typical electricity meter)")
	faultName := fs.String("fault", "none", "misbehaviour: none, bad-bcc, truncated, garbage, no-etx, silent or echo")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("simulate: unexpected argument %q", fs.Arg(0))
	}
	fault, err := meterproto.ParseFault(*faultName)
	if err != nil {
		return fmt.Errorf("simulate: -fault: %w", err)
	}
	var lines []string
	if *linesFile != "" {
		if lines, err = readLines(*linesFile); err != nil {
			return fmt.Errorf("simulate: -lines-file: %w", err)
		}
	}
	sim, err := meterproto.NewSimulator(meterproto.SimConfig{Address: *address, Lines: lines, Fault: fault})
	if err != nil {
		return fmt.Errorf("simulate: %w", err)
	}
	defer sim.Close()
	addr, err := sim.Listen(ctx, *listen)
	if err != nil {
		return fmt.Errorf("simulate: %w", err)
	}
	fmt.Fprintf(stdout, "amrd simulate: IEC 62056-21 meter on %s (address %q, fault %s); Ctrl-C stops it\n", addr, *address, fault)
	<-ctx.Done()
	return nil
}

// readLines reads the data lines of a file: blank lines are skipped, CR LF or LF ends
// a line.
func readLines(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimRight(sc.Text(), "\r"); strings.TrimSpace(l) != "" {
			lines = append(lines, l)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(lines) == 0 {
		return nil, fmt.Errorf("%s holds no data lines", path)
	}
	return lines, nil
}
