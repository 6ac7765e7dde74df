package file

import (
	"bufio"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sluicehq/sluice/internal/filelock"
	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/internal/records"
)

const (
	modeOverwrite = "overwrite"
	modeAppend    = "append"
)

func fileSinkSpec() stages.Spec {
	return stages.Spec{
		Name:    "file",
		Summary: "Write records to a file as JSON lines, CSV or raw lines",
		Doc: `Writes records to path, creating its directory. overwrite empties the ` +
			`file when the run starts; append adds to it (a CSV file that has a ` +
			`header keeps it and its column order). The format defaults to csv for ` +
			`a .csv path, lines for .txt and .log, and jsonl otherwise, written as ` +
			`by the stdout sink.

With dedupe (the default) the sink writes each record exactly once, ` +
			`across crashes too: after each batch it syncs the file and records, ` +
			`in a journal next to it (.NAME.sluice-journal), the file's length ` +
			`and the message IDs the batch held. A resumed run cuts the file ` +
			`back to the last length recorded and skips the messages the journal ` +
			`has: it keeps the last dedup_window of writing in memory (about 50 ` +
			`bytes a record; time while nothing is written does not count), and ` +
			`looks a record that may be a copy (one published again after a ` +
			`crash) up in the whole journal (16 bytes a record of the run), so ` +
			`no copy gets through however long anything was down. Without dedupe each batch is handed ` +
			`to the operating system before it is acknowledged and synced when ` +
			`the sink closes: delivery is at-least-once, records of a batch ` +
			`redelivered after a crash appear twice. A batch that fails to write ` +
			`is cut off the file again, so a retry neither tears nor repeats ` +
			`lines.

A {worker} in path becomes the worker's stable id (sluice worker --id, ` +
			`the host name by default; characters other than letters, digits, ` +
			`'.', '_' and '-' become '_'), giving each worker its own file. ` +
			`While open, the sink holds an exclusive lock on the file: a second ` +
			`sink opening it, in another process or the same one, is refused at ` +
			`start with an error saying the file is busy, instead of ` +
			`interleaving its records with the first's. The lock is advisory ` +
			`(flock on Linux, macOS and the BSDs; none on Windows) and local ` +
			`to one host: a shared network file system may not honour it.

With dedupe and many workers writing per-worker files, each file holds ` +
			`exactly once the records its worker acknowledged, but a record a ` +
			`killed worker wrote and did not acknowledge is delivered again to ` +
			`another worker: across the files, delivery is at-least-once after a ` +
			`worker dies. One path without {worker} stays exactly-once: the lock ` +
			`lets a second sluice worker stand by, retrying, and take the file ` +
			`over from its journal when the first dies.

Example:

    - name: write
      sink: file
      with:
        path: out/big-orders.jsonl
        mode: append`,
		Params: []stages.Param{
			{Name: "path", Type: stages.TypeString, Required: true, Path: true, Doc: "The file to write; {worker} in it becomes the worker's id, one file per worker."},
			{Name: "format", Type: stages.TypeString, Enum: []string{records.JSONL, records.CSV, records.Lines}, Doc: "Output format: jsonl, csv, or lines (each payload as it is, one per line); default csv for a .csv path, lines for .txt/.log, else jsonl."},
			{Name: "mode", Type: stages.TypeString, Default: modeOverwrite, Enum: []string{modeOverwrite, modeAppend}, Doc: "overwrite empties the file at the start of the run; append adds to it."},
			records.ColumnsParam,
			{Name: "dedupe", Type: stages.TypeBool, Default: true, Doc: "Write each record once across crashes and resumed runs, keeping a journal next to the file; false is at-least-once and does not sync each batch."},
		},
		Check:   checkFileSink,
		NewSink: newFileSink,
	}
}

func checkFileSink(p stages.Params) error {
	if p.String("path") == "" {
		return stages.ParamErrorf("path", "must not be empty")
	}
	return records.CheckColumns(p, fileSinkFormat(p))
}

func fileSinkFormat(p stages.Params) string {
	if f := p.String("format"); f != "" {
		return f
	}
	return records.OutputFormat(p.String("path"))
}

// fileSink appends batches to one file. size is the file's length after
// the last successful Write: a failed Write truncates the file back to it.
type fileSink struct {
	path string
	mu   sync.Mutex
	f    *os.File // nil once closed
	lock *os.File // holds the file's advisory lock until Close
	cw   countingWriter
	bw   *bufio.Writer
	rw   *records.Writer
	size int64

	j       *journal // nil without dedupe
	fresh   []*stages.Message
	pos     []int // index in the batch of each message of fresh
	ids     []digest
	inBatch map[digest]struct{}
	maybe   map[digest]struct{} // of fresh, those that may be copies
	// marked holds the records written that were marked as possible
	// copies (and not found before): an unmarked record of the same ID
	// that comes after one of them is its original, overtaken (by a
	// worker upstream holding it longer than the memory window). At most
	// markedMax, then it starts over.
	marked map[digest]struct{}
	log    *slog.Logger // nil when Info gave none
}

var _ stages.Sink = (*fileSink)(nil)

// countingWriter counts the bytes that reached w.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func newFileSink(p stages.Params, info stages.Info) (stages.Sink, error) {
	if err := checkFileSink(p); err != nil {
		return nil, err
	}
	path, perWorker, err := fileSinkPath(p.String("path"), info.WorkerID)
	if err != nil {
		return nil, err
	}
	format := fileSinkFormat(p)
	columns := p.Strings("columns")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fileError(filepath.Dir(path), err)
	}
	// Lock the file before anything empties, cuts back or journals it.
	lock, err := lockFileSink(path, perWorker)
	if err != nil {
		return nil, err
	}
	locked := true
	defer func() {
		if locked {
			lock.Close()
		}
	}()
	var j *journal
	resume := false
	if p.Bool("dedupe") {
		window := info.DedupWindow
		if window <= 0 {
			window = defaultDedupWindow
		}
		var found bool
		if j, found, err = openJournal(path, window); err != nil {
			return nil, err
		}
		// The journal holds this run's writes only if the run is resumed
		// and the sink had opened before the interruption.
		resume = info.Resumed && found && j.last.run == info.Run
		j.run = info.Run
	}
	// Without a journal a resumed run appends to what the run wrote.
	appendTo := p.String("mode") == modeAppend || (j == nil && info.Resumed)
	s, err := openFileSink(path, format, columns, appendTo, j, resume)
	if err != nil {
		if j != nil {
			j.close()
		}
		return nil, err
	}
	if j != nil && !resume {
		if err := j.reset(info.Run, s.size); err != nil {
			s.f.Close()
			j.close()
			return nil, err
		}
	}
	s.lock, locked, s.log = lock, false, info.Logger
	return s, nil
}

// workerPlaceholder in a file sink's path becomes the worker's id.
const workerPlaceholder = "{worker}"

// fileSinkPath replaces {worker} in path with the worker's id, or with the
// host name when the id is empty; perWorker tells that path had one.
func fileSinkPath(path, workerID string) (_ string, perWorker bool, err error) {
	if !strings.Contains(path, workerPlaceholder) {
		return path, false, nil
	}
	if workerID == "" {
		if workerID, err = os.Hostname(); err != nil {
			return "", false, stages.ParamErrorf("path", "%s needs the worker's id, and the host name is unknown: %v", workerPlaceholder, err)
		}
	}
	return strings.ReplaceAll(path, workerPlaceholder, sanitizeFileName(workerID)), true, nil
}

// sanitizeFileName makes s safe as a part of a file name: every character
// other than A-Z, a-z, 0-9, '.', '_' and '-' becomes '_', and so does a
// name of dots alone ("." and ".." would name directories).
func sanitizeFileName(s string) string {
	if strings.Trim(s, ".") == "" {
		return strings.Repeat("_", len(s))
	}
	b := []byte(s)
	for i, c := range b {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			b[i] = '_'
		}
	}
	return string(b)
}

// lockFileSink opens the file at path, creating it but leaving its content
// alone, and takes the exclusive advisory lock that keeps a second sink
// from writing it. Closing the returned file releases the lock. A lock
// held elsewhere is an error matching ErrBusy.
func lockFileSink(path string, perWorker bool) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fileError(path, err)
	}
	ok, err := filelock.TryLock(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("file %s: lock: %w", path, err)
	}
	if !ok {
		f.Close()
		return nil, &busyError{path: path, perWorker: perWorker}
	}
	return f, nil
}

// busyError reports a file that another sink holds locked. It matches
// ErrBusy.
type busyError struct {
	path      string
	perWorker bool
}

func (e *busyError) Error() string {
	fix := "put " + workerPlaceholder + " in path to give each process its own file"
	if e.perWorker {
		fix = "give each worker its own id (sluice worker --id)"
	}
	return fmt.Sprintf("file %s is being written by another process (or another sink of this one); two writers would interleave their records: %s", e.path, fix)
}

func (e *busyError) Is(target error) bool { return target == stages.ErrBusy }

// defaultDedupWindow is the dedup window when Info does not give one.
const defaultDedupWindow = 2 * time.Minute

// openFileSink opens the file for writing: emptied, or appended to, or
// cut back to the journal's last entry when resuming.
func openFileSink(path, format string, columns []string, appendTo bool, j *journal, resume bool) (*fileSink, error) {
	// O_APPEND in every mode, so that writes after a truncation land at
	// the new end of the file.
	flags := os.O_WRONLY | os.O_CREATE | os.O_APPEND
	if !appendTo && !resume {
		flags |= os.O_TRUNC
	}
	f, err := os.OpenFile(path, flags, 0o644)
	if err != nil {
		return nil, fileError(path, err)
	}
	s := &fileSink{path: path, f: f, j: j}
	if j != nil {
		s.inBatch, s.maybe, s.marked = make(map[digest]struct{}), make(map[digest]struct{}), make(map[digest]struct{})
		if err := syncDir(filepath.Dir(path)); err != nil {
			f.Close()
			return nil, err
		}
	}
	if resume {
		if err := s.cutBack(j.last.size); err != nil {
			f.Close()
			return nil, err
		}
	}
	header, err := s.prepare(format)
	if err != nil {
		f.Close()
		return nil, err
	}
	if header != nil {
		if columns != nil && !slices.Equal(columns, header) {
			f.Close()
			return nil, stages.ParamErrorf("columns", "%v differ from the header %v of file %s", columns, header, path)
		}
		columns = header
	}
	s.cw = countingWriter{w: f, n: s.size}
	s.bw = bufio.NewWriterSize(&s.cw, records.WriteBufferSize)
	s.rw = records.NewWriter(format, s.bw, columns, header != nil)
	return s, nil
}

// cutBack truncates the file of a resumed run to the length the journal
// recorded last, dropping a batch written after it.
func (s *fileSink) cutBack(size int64) error {
	fi, err := s.f.Stat()
	if err != nil {
		return fileError(s.path, err)
	}
	if fi.Size() < size {
		return fmt.Errorf("file %s: cannot resume the run: the file has %d bytes, its journal %s recorded %d (the file changed since the run was interrupted; run with --fresh to start over)",
			s.path, fi.Size(), journalPath(s.path), size)
	}
	if fi.Size() > size {
		if err := s.f.Truncate(size); err != nil {
			return fileError(s.path, err)
		}
	}
	return nil
}

// prepare looks at what an appended-to file holds: it sets s.size, ends a
// last line cut short by a crash, and for csv returns the existing header.
func (s *fileSink) prepare(format string) (header []string, err error) {
	fi, err := s.f.Stat()
	if err != nil {
		return nil, fileError(s.path, err)
	}
	s.size = fi.Size()
	if s.size == 0 {
		return nil, nil
	}
	r, err := os.Open(s.path)
	if err != nil {
		return nil, fileError(s.path, err)
	}
	defer r.Close()
	last := make([]byte, 1)
	if _, err := r.ReadAt(last, s.size-1); err != nil {
		return nil, fileError(s.path, err)
	}
	if last[0] != '\n' {
		if _, err := s.f.Write([]byte{'\n'}); err != nil {
			return nil, fileError(s.path, err)
		}
		s.size++
	}
	if format != records.CSV {
		return nil, nil
	}
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	header, err = cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, nil // only blank lines
	}
	if err != nil {
		return nil, fmt.Errorf("file %s: read the csv header: %w", s.path, err)
	}
	return header, nil
}

// markedMax bounds fileSink.marked: about 20 MB.
const markedMax = 1 << 18

// dropCopies looks the records of fresh that may be copies (s.maybe) up in
// the whole journal and leaves out those it finds.
func (s *fileSink) dropCopies() error {
	want := maps.Clone(s.maybe)
	if err := s.j.lookup(want); err != nil {
		return err
	}
	k := 0
	for i, d := range s.ids {
		if _, maybe := s.maybe[d]; maybe {
			if _, missing := want[d]; !missing {
				continue // written before
			}
		}
		s.fresh[k], s.pos[k], s.ids[k] = s.fresh[i], s.pos[i], d
		k++
	}
	if s.log != nil && k < len(s.fresh) {
		s.log.Info("left out copies of records the file has from before", "path", s.path, "records", len(s.fresh)-k)
	}
	clear(s.fresh[k:])
	s.fresh, s.pos, s.ids = s.fresh[:k], s.pos[:k], s.ids[:k]
	return nil
}

func (s *fileSink) Write(_ context.Context, batch []*stages.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return fmt.Errorf("file %s: %w", s.path, stages.ErrSinkClosed)
	}
	if s.j == nil {
		return s.write(batch)
	}

	// Leave out what the journal has seen and repeats within the batch.
	s.fresh, s.pos, s.ids = s.fresh[:0], s.pos[:0], s.ids[:0]
	clear(s.inBatch)
	clear(s.maybe)
	for i, m := range batch {
		var d digest
		if ids := m.Header[stages.HeaderMsgID]; len(ids) > 0 && ids[0] != "" {
			d = s.j.digest(ids[0])
			if _, dup := s.inBatch[d]; dup || s.j.has(d) {
				continue
			}
			if _, overtaken := s.marked[d]; overtaken {
				continue
			}
			s.inBatch[d] = struct{}{}
			if m.MaybeCopy() {
				s.maybe[d] = struct{}{}
			}
		}
		s.fresh, s.pos, s.ids = append(s.fresh, m), append(s.pos, i), append(s.ids, d)
	}
	if len(s.maybe) > 0 {
		if err := s.dropCopies(); err != nil {
			return err
		}
	}
	if len(s.fresh) == 0 {
		return nil
	}
	before, header := s.size, s.rw.Header
	err := s.write(s.fresh)
	var be *stages.BatchError
	if err != nil && !errors.As(err, &be) {
		return err
	}
	// Record the IDs of what reached the file.
	ids := s.ids[:0]
	for k, d := range s.ids {
		if (be == nil || be.Errs[k] == nil) && d != (digest{}) {
			ids = append(ids, d)
			if _, maybe := s.maybe[d]; maybe {
				if len(s.marked) >= markedMax {
					clear(s.marked)
				}
				s.marked[d] = struct{}{}
			}
		}
	}
	if serr := s.f.Sync(); serr != nil {
		return s.rollback(before, header, fileError(s.path, serr))
	}
	if jerr := s.j.record(s.size, ids); jerr != nil {
		return s.rollback(before, header, jerr)
	}
	clear(s.fresh)
	if be == nil {
		return nil
	}
	errs := make([]error, len(batch))
	for k, e := range be.Errs {
		errs[s.pos[k]] = e
	}
	return &stages.BatchError{Errs: errs}
}

// write writes a batch to the file. If it fails, the file is cut back to
// its length before, so that the retry neither tears nor repeats lines.
func (s *fileSink) write(batch []*stages.Message) error {
	before, header := s.size, s.rw.Header
	err := records.WriteBatch(s.rw, s.bw, batch)
	if _, ok := err.(*stages.BatchError); err == nil || ok {
		s.size = s.cw.n
		return err
	}
	return s.rollback(before, header, fileError(s.path, err))
}

// rollback cuts the file back to size after err and returns err; header
// tells whether the csv header was in the file at that size.
func (s *fileSink) rollback(size int64, header bool, err error) error {
	s.bw.Reset(&s.cw)
	s.rw.Header = header
	if terr := s.f.Truncate(size); terr != nil {
		return fmt.Errorf("%w (truncating back failed too: %v)", err, terr)
	}
	s.cw.n, s.size = size, size
	return err
}

// Close flushes, syncs the file to disk, closes it and then releases its
// lock. Closing again does nothing.
func (s *fileSink) Close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := s.bw.Flush()
	if serr := s.f.Sync(); err == nil {
		err = serr
	}
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	s.f = nil
	if s.j != nil {
		if jerr := s.j.close(); err == nil {
			err = jerr
		}
	}
	// Release the lock last, once the file and its journal are final.
	if lerr := s.lock.Close(); err == nil {
		err = lerr
	}
	if err != nil {
		return fileError(s.path, err)
	}
	return nil
}
