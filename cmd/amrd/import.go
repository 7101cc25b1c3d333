package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/amrd/amrd/importer"
	"github.com/amrd/amrd/store"
)

const importUsage = "usage: amrd import readings [-skip N] [-rejects FILE] [-show N] FILE.csv[.gz] (FILE - reads standard input)"

// importCmd runs `amrd import readings`: a CSV file of readings through the ingest
// pipeline that serve uses, with the rights of staff (readings of unknown devices are
// staged). The file's header is checked before the database is opened.
func importCmd(ctx context.Context, cfg settings, log *slog.Logger, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "readings" {
		return errors.New(importUsage)
	}
	fs := flag.NewFlagSet("import readings", flag.ContinueOnError)
	fs.SetOutput(stderr)
	opt := importer.DefaultOptions()
	fs.IntVar(&opt.Skip, "skip", opt.Skip, "skip the rows on lines 2 to `N` (resumes an import that stopped after line N)")
	fs.StringVar(&opt.RejectsPath, "rejects", opt.RejectsPath, "write every rejected or conflicting row, with its line and errors, as CSV to `FILE`")
	fs.IntVar(&opt.Show, "show", opt.Show, "list the first `N` rejected or conflicting rows in the report")
	files, err := parseInterspersed(fs, args[1:])
	if err != nil {
		return err
	}
	if len(files) != 1 {
		return errors.New(importUsage)
	}
	im, err := importer.Open(files[0], stdin, opt)
	if err != nil {
		return err
	}
	defer im.Close()
	return withStore(ctx, cfg, log, func(st *store.Store) error {
		if err := checkSchema(ctx, st); err != nil {
			return err
		}
		pipe, err := newPipeline(cfg, st, log, prometheus.NewRegistry())
		if err != nil {
			return err
		}
		stopPipe := startPipeline(pipe)
		im.Run(ctx, pipe, cfg.Ingest, stderr)
		stopPipe() // flushes anything still queued: nothing is, every Submit returned
		err = im.Finish(stdout)
		if re := (*importer.RejectedError)(nil); errors.As(err, &re) {
			return &exitError{code: 2, err: err}
		}
		return err
	})
}

// parseInterspersed parses flags given before, between or after the positional
// arguments (`amrd import readings data.csv -skip 100`), and returns the positional ones.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}
