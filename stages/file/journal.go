package file

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// A journal records, next to a file a sink writes, which messages the file
// holds: after each batch is written and synced, one entry with the file's
// new size and a digest of every message ID written. A sink that resumes an
// interrupted run cuts the file back to the size of the journal's last
// entry (dropping a batch that was written but not recorded, which is
// delivered again) and skips the messages whose IDs it remembers: those
// delivered again because their acknowledgement was lost with a process,
// and copies a stage republished after an interruption longer than the
// streams' dedup window.
//
// The journal forgets an entry only once both the dedup window has passed
// on its writing clock and keep records were written after it. The writing
// clock is the time between entries, each gap counting at most
// journalGapCap and the gap over a restart of the sink nothing: it stops
// while nothing is written, so however long a process, the server or the
// machine was down, the copies that a restart republishes find the entries
// of their originals. See "Exactly once,
// whatever the outage" in docs/architecture.md.
//
// An entry is: magic, run, size, time (Unix nanoseconds), count, count
// digests, and a CRC-32 of all that. A torn last entry (a crash while it was
// written) fails its CRC and is cut off.
type journal struct {
	path   string
	f      *os.File
	run    uint64
	window time.Duration // of writing clock
	size   int64         // the journal file's length

	now     func() time.Time
	loaded  bool      // the last entry was read from the file, not written by this process
	h       hash.Hash // FNV-1a 128, for digests
	seen    map[digest]struct{}
	entries []journalEntry // oldest first: those within the window of the newest
	last    journalEntry   // the newest entry
}

// digest names a message ID in the journal: 128 bits of FNV-1a, so that a
// collision (which would drop a record) is out of reach.
type digest [16]byte

// digest returns the digest of a message ID.
func (j *journal) digest(id string) digest {
	j.h.Reset()
	_, _ = io.WriteString(j.h, id)
	var d digest
	j.h.Sum(d[:0])
	return d
}

type journalEntry struct {
	run  uint64
	size int64
	at   time.Time
	ids  []digest

	// Not stored: the writing clock at this entry, since the run's first,
	// computed from the entries before as they are read.
	clock time.Duration
}

const (
	journalMagic = "SLJ1"
	// journalGapCap is the most that the time between two entries adds to
	// the writing clock: an idle sink or an outage counts no more.
	journalGapCap = time.Second
)

// journalPath returns where the journal of the file at path lives: a hidden
// file next to it.
func journalPath(path string) string {
	return filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".sluice-journal")
}

// openJournal opens the journal of the file at path, creating it, and
// reads its entries, keeping in memory those of the last window of writing
// clock. found is false for an empty journal.
func openJournal(path string, window time.Duration) (j *journal, found bool, err error) {
	jp := journalPath(path)
	f, err := os.OpenFile(jp, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, false, fileError(jp, err)
	}
	j = &journal{path: jp, f: f, window: window, now: time.Now, h: fnv.New128a(), seen: make(map[digest]struct{})}
	if err := j.load(); err != nil {
		f.Close()
		return nil, false, fileError(jp, err)
	}
	return j, j.size > 0, nil
}

// load reads every entry, keeps those within the window of the newest and
// cuts off a torn one at the end.
func (j *journal) load() error {
	br := bufio.NewReader(j.f)
	var off int64
	for {
		e, n, err := readJournalEntry(br)
		if err != nil {
			// The end, or a torn entry: what follows the last good entry
			// is cut off.
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, errJournalCorrupt) {
				break
			}
			return err
		}
		off += n
		j.add(e)
	}
	j.loaded = len(j.entries) > 0
	if err := j.f.Truncate(off); err != nil {
		return err
	}
	if _, err := j.f.Seek(off, io.SeekStart); err != nil {
		return err
	}
	j.size = off
	return nil
}

var errJournalCorrupt = errors.New("corrupt journal entry")

func readJournalEntry(r io.Reader) (journalEntry, int64, error) {
	var head [4 + 8 + 8 + 8 + 4]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return journalEntry{}, 0, err
	}
	if string(head[:4]) != journalMagic {
		return journalEntry{}, 0, errJournalCorrupt
	}
	count := binary.LittleEndian.Uint32(head[28:])
	if count > 1<<24 {
		return journalEntry{}, 0, errJournalCorrupt
	}
	body := make([]byte, int(count)*len(digest{})+4)
	if _, err := io.ReadFull(r, body); err != nil {
		return journalEntry{}, 0, err
	}
	crc := crc32.NewIEEE()
	crc.Write(head[:])
	crc.Write(body[:len(body)-4])
	if crc.Sum32() != binary.LittleEndian.Uint32(body[len(body)-4:]) {
		return journalEntry{}, 0, errJournalCorrupt
	}
	e := journalEntry{
		run:  binary.LittleEndian.Uint64(head[4:]),
		size: int64(binary.LittleEndian.Uint64(head[12:])),
		at:   time.Unix(0, int64(binary.LittleEndian.Uint64(head[20:]))),
		ids:  make([]digest, count),
	}
	for i := range e.ids {
		copy(e.ids[i][:], body[i*len(digest{}):])
	}
	return e, int64(len(head) + len(body)), nil
}

func appendJournalEntry(b []byte, e journalEntry) []byte {
	start := len(b)
	b = append(b, journalMagic...)
	b = binary.LittleEndian.AppendUint64(b, e.run)
	b = binary.LittleEndian.AppendUint64(b, uint64(e.size))
	b = binary.LittleEndian.AppendUint64(b, uint64(e.at.UnixNano()))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(e.ids)))
	for _, d := range e.ids {
		b = append(b, d[:]...)
	}
	return binary.LittleEndian.AppendUint32(b, crc32.ChecksumIEEE(b[start:]))
}

// add takes an entry into memory, sets its clock, and forgets the entries
// that fell out of the window.
func (j *journal) add(e journalEntry) {
	if e.run != j.last.run || len(j.entries) == 0 {
		// Another run: what it wrote is not delivered again.
		clear(j.seen)
		j.entries = j.entries[:0]
		e.clock, j.loaded = 0, false
	} else {
		gap := min(max(e.at.Sub(j.last.at), 0), journalGapCap)
		if j.loaded {
			// The first entry after the sink was down: that time is not
			// writing time.
			gap, j.loaded = 0, false
		}
		e.clock = j.last.clock + gap
	}
	j.last = e
	j.entries = append(j.entries, e)
	for _, d := range e.ids {
		j.seen[d] = struct{}{}
	}
	drop := 0
	for drop < len(j.entries)-1 && e.clock-j.entries[drop].clock > j.window {
		for _, d := range j.entries[drop].ids {
			delete(j.seen, d)
		}
		drop++
	}
	if drop > 0 {
		j.entries = j.entries[:copy(j.entries, j.entries[drop:])]
	}
}

// has reports whether a message of ID digest d was recorded in the window.
func (j *journal) has(d digest) bool {
	_, ok := j.seen[d]
	return ok
}

// lookup reads the whole journal and deletes from want the digests it
// finds: a sink looks up there the records that may be copies and are no
// longer in memory.
func (j *journal) lookup(want map[digest]struct{}) error {
	br := bufio.NewReader(io.NewSectionReader(j.f, 0, j.size))
	for len(want) > 0 {
		e, _, err := readJournalEntry(br)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fileError(j.path, err)
		}
		for _, d := range e.ids {
			delete(want, d)
		}
	}
	return nil
}

// record appends an entry and syncs it to disk: the file now has size
// bytes and holds the messages of ids, which the journal copies.
func (j *journal) record(size int64, ids []digest) error {
	e := journalEntry{run: j.run, size: size, at: j.now(), ids: slices.Clone(ids)}
	b := appendJournalEntry(nil, e)
	if _, err := j.f.Write(b); err != nil {
		return fileError(j.path, err)
	}
	if err := j.f.Sync(); err != nil {
		return fileError(j.path, err)
	}
	j.size += int64(len(b))
	j.add(e)
	return nil
}

// reset empties the journal and starts it for run with a file of size
// bytes.
func (j *journal) reset(run uint64, size int64) error {
	if err := j.f.Truncate(0); err != nil {
		return fileError(j.path, err)
	}
	if _, err := j.f.Seek(0, io.SeekStart); err != nil {
		return fileError(j.path, err)
	}
	j.size, j.run = 0, run
	clear(j.seen)
	j.entries, j.last = j.entries[:0], journalEntry{}
	return j.record(size, nil)
}

func (j *journal) close() error {
	if j.f == nil {
		return nil
	}
	err := j.f.Close()
	j.f = nil
	return err
}

// syncDir syncs a directory, so that a rename or a new file in it
// survives a power loss.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
