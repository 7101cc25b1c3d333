// Package importer is the CSV import of readings for `amrd import readings`: a file's
// rows go through the same ingest pipeline as new-meter-readings items (validation,
// CT/VT factors, time zones, staging, duplicates absorbed and conflicts refused), in
// bounded chunks, with a report in file order, a rejects file, progress on a terminal or
// a log, and an exact point to resume from. cmd/amrd parses the flags and wires the
// pipeline; this package imports ingest and store's types, never cmd.
package importer

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mattn/go-isatty"

	"github.com/amrd/amrd/ingest"
	"github.com/amrd/amrd/store"
)

// Sizing of an import. The file is read in chunks handed to the pipeline by a few
// concurrent submitters, so that the pipeline always has the next chunk queued while it
// commits one, and its group commit puts two chunks in one batch.
const (
	// submitters: two per flusher (2 by default), one committing and one queued. With
	// the chunk being filled, at most 5 chunks are held at once: with the default batch
	// (chunks of 5,000 rows, see ChunkRows), about 10 MB at ~400 bytes a row (its cells,
	// its reading), whatever the file's size.
	submitters = 4
	// progressTerminalEvery redraws the progress bar on a terminal (4 times a second
	// looks live and costs nothing); progressLogEvery prints a progress line to a log
	// file or pipe (720 lines an hour: enough to see a stall, few enough to read).
	progressTerminalEvery = 250 * time.Millisecond
	progressLogEvery      = 5 * time.Second
)

// ChunkRows is the rows of a chunk for a pipeline of configuration cfg (a zero size
// taking its ingest.DefaultConfig value): half a batch, so that the chunks of two
// submitters fill one (5,000 of the default 10,000), and at most a quarter of the queue,
// so that every submitter's chunk fits beside the others' and the pipeline never answers
// ErrOverloaded (AMRD_INGEST_QUEUE_READINGS is at least 1,000: chunks of 250 then).
func ChunkRows(cfg ingest.Config) int {
	def := ingest.DefaultConfig()
	if cfg.BatchReadings <= 0 {
		cfg.BatchReadings = def.BatchReadings
	}
	if cfg.QueueReadings <= 0 {
		cfg.QueueReadings = def.QueueReadings
	}
	return max(1, min(cfg.BatchReadings/2, cfg.QueueReadings/submitters))
}

// columns are the CSV's columns, by header name, with the aliases new-meter-readings
// accepts (the names of Utilitarian's message bus). Their order is the rejects file's.
var columns = [4]struct{ name, alias string }{
	{"meter_device_name", "meter"}, {"series_name", "series"}, {"timestamp", ""}, {"value", ""},
}

const columnsHelp = "the header names the columns meter_device_name (or meter), series_name (or series), timestamp and value, in any order"

// Submitter takes readings into the write pipeline; *ingest.Pipeline satisfies it.
type Submitter interface {
	Submit(ctx context.Context, sc store.Scope, req *ingest.Request) (ingest.Report, error)
}

// DefaultOptions are `amrd import readings` without flags: every row, the first 20
// rejected or conflicting rows listed (a screenful), no rejects file.
func DefaultOptions() Options { return Options{Show: 20} }

// Options are an import's choices (the flags of `amrd import readings`).
type Options struct {
	// Skip passes over the rows on lines 2 to Skip: it resumes an import that stopped
	// after line Skip.
	Skip int
	// Show lists the first Show rejected or conflicting rows in the report.
	Show int
	// RejectsPath, when set, is where every rejected or conflicting row is written as
	// CSV, with its line and errors.
	RejectsPath string
}

// RejectedError is the outcome of an import that finished with rows rejected or
// conflicting: bad data, not a failed run (amrd exits with status 2 for it).
type RejectedError struct {
	File                string
	Rejected, Conflicts int
}

func (e *RejectedError) Error() string {
	return fmt.Sprintf("import readings from %s: %d rows rejected and %d conflicting", e.File, e.Rejected, e.Conflicts)
}

// Open opens the file to import (path "-": stdin), reads its header and creates the
// rejects file, so that a bad file or header is refused before a database is needed.
// Close it when done.
func Open(path string, stdin io.Reader, opt Options) (*Readings, error) {
	if opt.Skip < 0 || opt.Show < 0 {
		return nil, errors.New("import readings: -skip and -show take a number of at least 0")
	}
	in, err := openInput(path, stdin)
	if err != nil {
		return nil, err
	}
	r := csv.NewReader(in.r)
	r.FieldsPerRecord = -1 // a row of the wrong length is reported, not fatal
	r.ReuseRecord = true
	h, err := readHeader(r)
	if err != nil {
		_ = in.close()
		return nil, fmt.Errorf("import readings from %s: %w", in.name, err)
	}
	im := &Readings{
		in: in, csv: r, skip: opt.Skip, closers: []func() error{in.close},
		show: opt.Show, submitters: submitters, header: h, held: map[int]*chunk{},
		report: importReport{file: in.name, byReason: map[string]int{}, through: opt.Skip},
	}
	if opt.RejectsPath != "" {
		if fi, err := os.Stat(opt.RejectsPath); err == nil && in.info != nil && os.SameFile(fi, in.info) {
			_ = im.Close()
			return nil, fmt.Errorf("import readings: -rejects %s is the file being imported", opt.RejectsPath)
		}
		f, err := os.Create(opt.RejectsPath)
		if err != nil {
			_ = im.Close()
			return nil, fmt.Errorf("import readings: creating the rejects file: %w", err)
		}
		im.closers = append(im.closers, f.Close)
		im.rejects = csv.NewWriter(f)
		im.rejectsPath = opt.RejectsPath
		_ = im.rejects.Write([]string{"line", columns[0].name, columns[1].name, columns[2].name, columns[3].name, "reason", "errors"})
	}
	return im, nil
}

// Close closes the file and the rejects file.
func (im *Readings) Close() error {
	var errs []error
	for _, c := range im.closers {
		errs = append(errs, c())
	}
	im.closers = nil
	return errors.Join(errs...)
}

// Run reads the file into pipe, a running pipeline of configuration cfg, until the file
// ends, ctx is cancelled (Ctrl-C) or a chunk fails, showing its progress on progress.
// Finish then reports what it did.
func (im *Readings) Run(ctx context.Context, pipe Submitter, cfg ingest.Config, progress io.Writer) {
	im.pipe = pipe
	im.chunkRows = ChunkRows(cfg)
	im.read = &im.in.read
	prog := newProgress(progress, &im.answered, &im.through, im.in.size)
	go prog.run()
	im.run(ctx, im.csv, im.skip)
	prog.finish()
}

// input is the file being imported; reading it counts the bytes read, for the progress.
type input struct {
	name  string
	src   io.Reader    // the file
	r     io.Reader    // its text, gunzipped when it was compressed
	read  atomic.Int64 // bytes read of the file (compressed ones when gzipped)
	size  int64        // the file's size; 0 when unknown (a pipe)
	info  os.FileInfo  // nil for standard input
	close func() error
}

func (in *input) Read(p []byte) (int, error) {
	n, err := in.src.Read(p)
	in.read.Add(int64(n))
	return n, err
}

// openInput opens path ("-": standard input) and gunzips it when it starts with gzip's
// magic bytes, whatever its name.
func openInput(path string, stdin io.Reader) (*input, error) {
	in := &input{name: path, src: stdin, close: func() error { return nil }}
	if path == "-" {
		in.name = "standard input"
	} else {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("import readings: %w", err)
		}
		in.src, in.close = f, f.Close
		if fi, err := f.Stat(); err == nil {
			in.info = fi
			if fi.Mode().IsRegular() {
				in.size = fi.Size()
			}
		}
	}
	br := bufio.NewReaderSize(in, 64<<10)
	in.r = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			_ = in.close()
			return nil, fmt.Errorf("import readings from %s: %w", in.name, err)
		}
		in.r = zr
	}
	return in, nil
}

// header is where each of columns is in the file's rows, and how many columns the
// header has.
type header struct {
	pos   [4]int
	ncols int
}

// readHeader reads the first line and maps it to columns. Every problem with it
// is reported at once: unknown columns (named), columns given twice, missing columns.
func readHeader(r *csv.Reader) (header, error) {
	rec, err := r.Read()
	if errors.Is(err, io.EOF) {
		return header{}, errors.New("the file is empty: its first line must be a header; " + columnsHelp)
	}
	if err != nil {
		return header{}, fmt.Errorf("reading the header: %w", err)
	}
	h := header{pos: [4]int{-1, -1, -1, -1}, ncols: len(rec)}
	given := [4]string{}
	var unknown, twice, missing []string
	for i, cell := range rec {
		if i == 0 {
			cell = strings.TrimPrefix(cell, "\ufeff") // a byte order mark, as spreadsheets write
		}
		col := strings.ToLower(strings.TrimSpace(cell))
		k := -1
		for j, c := range columns {
			if col == c.name || (c.alias != "" && col == c.alias) {
				k = j
			}
		}
		switch {
		case k < 0:
			unknown = append(unknown, strconv.Quote(cell))
		case h.pos[k] >= 0:
			twice = append(twice, fmt.Sprintf("%s (as %q and %q)", columns[k].name, given[k], cell))
		default:
			h.pos[k], given[k] = i, cell
		}
	}
	for k, p := range h.pos {
		if p < 0 {
			missing = append(missing, columns[k].name)
		}
	}
	var errs []string
	if len(unknown) > 0 {
		errs = append(errs, "unknown columns in the header: "+strings.Join(unknown, ", "))
	}
	if len(twice) > 0 {
		errs = append(errs, "columns given twice in the header: "+strings.Join(twice, ", "))
	}
	if len(missing) > 0 {
		errs = append(errs, "missing columns in the header: "+strings.Join(missing, ", "))
	}
	if len(errs) > 0 {
		return header{}, errors.New(strings.Join(errs, "; ") + " (" + columnsHelp + "; no other column is taken)")
	}
	return h, nil
}

// chunk is a run of consecutive rows submitted together.
type chunk struct {
	seq   int
	lines []int          // each row's line in the file
	cells [][4]string    // each row's cells in columns order, for the rejects file
	req   ingest.Request // a position a row: its reading, or why it was refused
	bytes int64          // bytes of the file read when the chunk was cut
	rep   ingest.Report
	err   error
}

func newChunk(seq, rows int) *chunk {
	return &chunk{seq: seq, lines: make([]int, 0, rows), cells: make([][4]string, 0, rows)}
}

// add reads one row, exactly as new-meter-readings reads one item (ingest.Fields). An
// empty cell is a field not sent.
func (c *chunk) add(line int, rec []string, h header) {
	c.lines = append(c.lines, line)
	var cells [4]string
	var f [4]*string
	for k, p := range h.pos {
		if p < len(rec) && rec[p] != "" {
			cells[k] = rec[p]
			f[k] = &cells[k]
		}
	}
	c.cells = append(c.cells, cells)
	if len(rec) > h.ncols {
		c.refuse(fmt.Sprintf("This row has %d fields; the header has %d.", len(rec), h.ncols), "too_many_fields")
		return
	}
	r, e := ingest.Fields{Device: f[0], Series: f[1], Timestamp: f[2], Value: f[3]}.Parse()
	if e != nil {
		c.req.Reject(*e)
		return
	}
	c.req.Add(r)
}

// addBroken records a row that is not CSV (a stray quote).
func (c *chunk) addBroken(line int, err error) {
	c.lines = append(c.lines, line)
	c.cells = append(c.cells, [4]string{})
	c.refuse("Not a CSV row: "+err.Error()+".", "bad_csv")
}

// refuse refuses the row just added to lines.
func (c *chunk) refuse(msg, reason string) {
	c.req.Reject(ingest.ItemError{Errors: map[string][]string{"non_field_errors": {msg}}, Reason: reason})
}

// Readings is one import of a CSV file of readings: it reads the file into the pipeline
// and folds the answers into its report in file order, whatever order the chunks commit
// in.
type Readings struct {
	in      *input         // nil when run is given the CSV reader (tests)
	csv     *csv.Reader    // the file's rows, after the header
	skip    int            // Options.Skip
	closers []func() error // the file's and the rejects file's

	pipe        Submitter
	chunkRows   int
	submitters  int
	show        int
	header      header
	rejects     *csv.Writer // nil without -rejects
	rejectsPath string

	read     *atomic.Int64 // bytes of the file read; nil when not counted
	failed   atomic.Bool   // a chunk failed: stop reading
	readErr  error         // the file could not be read to its end
	answered atomic.Int64  // rows answered by the pipeline, for the progress
	through  atomic.Int64  // bytes of the file read when the last answered chunk was cut

	mu      sync.Mutex
	next    int            // seq of the next chunk to fold
	held    map[int]*chunk // answered before an earlier chunk
	stopped bool           // a chunk failed: the resume point stays before it
	report  importReport
}

// importReport is what the import did.
type importReport struct {
	file        string
	start       time.Time
	rows        int // rows answered: accepted + staged + duplicates + conflicts + rejected
	skipped     int // rows passed over by -skip
	accepted    int
	staged      int
	duplicates  int
	conflicts   int
	rejected    int
	byReason    map[string]int
	first       []string // the first rejected or conflicting rows, "line N: errors"
	notWritten  int      // rows of chunks that failed
	through     int      // every row up to this line is answered: resume with -skip through
	err         error    // why the import stopped early
	interrupted bool
	rejectsErr  error
}

// run reads rows from r, skipping those on lines up to skip, and submits them in chunks
// until the file ends, ctx is cancelled (Ctrl-C) or a chunk fails. Chunks already
// submitted are always waited for (their context is not cancelled): what the pipeline
// took is committed and reported, and the resume point is exact.
func (im *Readings) run(ctx context.Context, r *csv.Reader, skip int) {
	im.report.start = time.Now()
	work := make(chan *chunk)
	var wg sync.WaitGroup
	sctx := context.WithoutCancel(ctx)
	for range im.submitters {
		wg.Go(func() {
			for c := range work {
				c.rep, c.err = im.pipe.Submit(sctx, store.AllOrgs, &c.req)
				im.done(c)
			}
		})
	}
	c := newChunk(0, im.chunkRows)
read:
	for !im.failed.Load() {
		if ctx.Err() != nil {
			im.report.interrupted = true
			break
		}
		rec, err := r.Read()
		var pe *csv.ParseError
		switch {
		case errors.Is(err, io.EOF):
			break read
		case errors.As(err, &pe):
			if pe.StartLine <= skip {
				im.report.skipped++
				continue
			}
			c.addBroken(pe.StartLine, pe.Err)
		case err != nil:
			im.readErr = fmt.Errorf("reading %s: %w", im.report.file, err)
			break read
		default:
			line, _ := r.FieldPos(0)
			if line <= skip {
				im.report.skipped++
				continue
			}
			c.add(line, rec, im.header)
		}
		if len(c.lines) == im.chunkRows {
			c.bytes = im.bytesRead()
			work <- c
			c = newChunk(c.seq+1, im.chunkRows)
		}
	}
	if len(c.lines) > 0 && !im.failed.Load() {
		c.bytes = im.bytesRead()
		work <- c // also when interrupted: the rows read are taken in and reported
	}
	close(work)
	wg.Wait()
	if im.readErr != nil && im.report.err == nil {
		im.report.err = im.readErr
	}
}

func (im *Readings) bytesRead() int64 {
	if im.read == nil {
		return 0
	}
	return im.read.Load()
}

// done folds the answered chunks into the report in file order.
func (im *Readings) done(c *chunk) {
	im.mu.Lock()
	defer im.mu.Unlock()
	im.held[c.seq] = c
	for {
		c, ok := im.held[im.next]
		if !ok {
			return
		}
		delete(im.held, im.next)
		im.next++
		im.fold(c)
	}
}

func (im *Readings) fold(c *chunk) {
	rep := &im.report
	im.answered.Add(int64(len(c.lines)))
	im.through.Store(c.bytes)
	if c.err != nil {
		// Nothing of this chunk was acknowledged; the rows of later chunks that were
		// are counted, and absorbed as duplicates when the import is resumed.
		im.failed.Store(true)
		im.stopped = true
		rep.notWritten += len(c.lines)
		if rep.err == nil {
			rep.err = fmt.Errorf("writing the rows of lines %d to %d: %w", c.lines[0], c.lines[len(c.lines)-1], c.err)
		}
		return
	}
	rep.rows += len(c.lines)
	rep.accepted += c.rep.Accepted
	rep.staged += c.rep.Staged
	rep.duplicates += c.rep.Duplicates
	rep.conflicts += c.rep.Conflicts
	for _, e := range c.rep.Rejected { // Index: the row in the chunk
		line := c.lines[e.Index]
		if e.Reason != ingest.ReasonConflict { // conflicts are counted by the pipeline
			rep.rejected++
			rep.byReason[e.Reason]++
		}
		msg := errorsText(e.Errors)
		if len(rep.first) < im.show {
			rep.first = append(rep.first, fmt.Sprintf("line %d: %s", line, msg))
		}
		if im.rejects != nil {
			cells := c.cells[e.Index]
			if err := im.rejects.Write([]string{strconv.Itoa(line), cells[0], cells[1], cells[2], cells[3], e.Reason, msg}); err != nil && rep.rejectsErr == nil {
				rep.rejectsErr = err
			}
		}
	}
	if !im.stopped {
		rep.through = c.lines[len(c.lines)-1]
	}
}

// errorsText is a row's errors on one line: "timestamp: ...; value: ...", by field.
func errorsText(errs map[string][]string) string {
	fields := slices.Sorted(maps.Keys(errs))
	for i, f := range fields {
		fields[i] = f + ": " + strings.Join(errs[f], " ")
	}
	return strings.Join(fields, "; ")
}

// Finish prints the report and returns the import's outcome: an error when it stopped
// early, a *RejectedError when rows were rejected or conflicted.
func (im *Readings) Finish(stdout io.Writer) error {
	rep := &im.report
	if im.rejects != nil {
		im.rejects.Flush()
		if err := im.rejects.Error(); err != nil && rep.rejectsErr == nil {
			rep.rejectsErr = err
		}
	}
	elapsed := time.Since(rep.start)
	state := "finished"
	switch {
	case rep.interrupted:
		state = "interrupted"
	case rep.err != nil:
		state = "stopped"
	}
	fmt.Fprintf(stdout, "import readings from %s: %s in %s (%.0f rows/s)\n", rep.file, state,
		elapsed.Round(time.Millisecond), float64(rep.rows)/max(elapsed.Seconds(), 1e-9))
	line := func(name string, n int) { fmt.Fprintf(stdout, "  %-12s %d\n", name, n) }
	line("rows read", rep.rows)
	if rep.skipped > 0 {
		line("skipped", rep.skipped)
	}
	line("accepted", rep.accepted)
	line("staged", rep.staged)
	line("duplicates", rep.duplicates)
	line("conflicts", rep.conflicts)
	line("rejected", rep.rejected)
	for _, r := range slices.Sorted(maps.Keys(rep.byReason)) {
		fmt.Fprintf(stdout, "    %-32s %d\n", r, rep.byReason[r])
	}
	if rep.notWritten > 0 {
		line("not written", rep.notWritten)
	}
	if n := rep.rejected + rep.conflicts; n > 0 && len(rep.first) > 0 {
		fmt.Fprintf(stdout, "first %d of %d rejected or conflicting rows:\n", len(rep.first), n)
		for _, f := range rep.first {
			fmt.Fprintf(stdout, "  %s\n", f)
		}
	}
	if rep.rejected+rep.conflicts > 0 && im.rejects != nil {
		fmt.Fprintf(stdout, "all of them are in %s\n", im.rejectsPath)
	}
	if rep.interrupted || rep.err != nil {
		fmt.Fprintf(stdout, "every row through line %d is in (written, staged or reported above); resume with -skip %d\n", rep.through, rep.through)
	}
	switch {
	case rep.err != nil:
		return fmt.Errorf("import readings from %s stopped: %w (resume with -skip %d)", rep.file, rep.err, rep.through)
	case rep.interrupted:
		return fmt.Errorf("import readings from %s interrupted (resume with -skip %d)", rep.file, rep.through)
	case rep.rejectsErr != nil:
		return fmt.Errorf("writing the rejects file %s: %w", im.rejectsPath, rep.rejectsErr)
	case rep.rejected+rep.conflicts > 0:
		return &RejectedError{File: rep.file, Rejected: rep.rejected, Conflicts: rep.conflicts}
	}
	return nil
}

// progress shows how far an import is on stderr: a bar redrawn in place on a terminal,
// a line every few seconds otherwise. It counts what the pipeline answered: the rows,
// and the bytes of the file they came from.
type progress struct {
	w     io.Writer
	tty   bool
	every time.Duration
	read  *atomic.Int64 // bytes of the file the answered rows came from
	size  int64         // the file's size, 0 when unknown
	rows  *atomic.Int64 // rows answered by the pipeline
	start time.Time
	stop  chan struct{}
	done  chan struct{}
}

func newProgress(w io.Writer, rows, read *atomic.Int64, size int64) *progress {
	p := &progress{w: w, every: progressLogEvery, rows: rows, read: read, size: size, start: time.Now(),
		stop: make(chan struct{}), done: make(chan struct{})}
	if f, ok := w.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
		p.tty, p.every = true, progressTerminalEvery
	}
	return p
}

func (p *progress) run() {
	defer close(p.done)
	t := time.NewTicker(p.every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			p.print()
		case <-p.stop:
			if p.tty {
				p.print() // the final state stays on the screen
				fmt.Fprintln(p.w)
			}
			return
		}
	}
}

func (p *progress) print() {
	text := progressText(p.rows.Load(), p.read.Load(), p.size, time.Since(p.start))
	if p.tty {
		fmt.Fprintf(p.w, "\r%s\x1b[K", text) // over the previous one; erase what it left
	} else {
		fmt.Fprintf(p.w, "import readings: %s\n", text)
	}
}

func (p *progress) finish() {
	close(p.stop)
	<-p.done
}

// progressText is one progress report: rows done and their rate; with a known size, a
// bar of the bytes done, and the time left at the rate they were done so far.
func progressText(rows, read, size int64, elapsed time.Duration) string {
	text := fmt.Sprintf("%d rows, %.0f rows/s", rows, float64(rows)/max(elapsed.Seconds(), 1e-9))
	if size <= 0 {
		return fmt.Sprintf("%s, %.1f MB read", text, float64(read)/1e6)
	}
	done := min(float64(read)/float64(size), 1)
	const width = 30
	bar := strings.Repeat("=", int(done*width))
	if len(bar) < width {
		bar += ">" + strings.Repeat(" ", width-len(bar)-1)
	}
	text = fmt.Sprintf("[%s] %5.1f%%  %s", bar, 100*done, text)
	if read > 0 && read < size {
		left := time.Duration(float64(elapsed) * float64(size-read) / float64(read))
		text += ", ETA " + left.Round(time.Second).String()
	}
	return text
}
