package journal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sync"
)

// The slot file format (version 1). A slot file is two copies of equal
// size, copy A at offset 0 and copy B at offset size/2, each a multiple of
// blockSize bytes (blockSize unless a record needed more). A copy is a
// header followed by its payload; the bytes after the payload are
// leftovers of earlier writes and mean nothing:
//
//	offset  size  field
//	0       4     magic "WGJS"
//	4       2     format version, uint16 little-endian (1)
//	6       2     flags, uint16 LE: bit 0 set = free (no record; payload empty)
//	8       8     sequence number, uint64 LE: per slot, higher is newer
//	16      4     payload length in bytes, uint32 LE
//	20      4     CRC-32C (Castagnoli) of bytes 0-19 and the payload, uint32 LE
//	24      n     payload: the Record as JSON
//
// A copy whose header is 24 zero bytes is empty (never written).
const (
	slotMagic     = "WGJS"
	formatVersion = 1
	headerSize    = 24
	flagFree      = 1
	// blockSize is the default size of a copy and the unit slot copies
	// grow by: a filesystem block and a page, so that each copy has its
	// own blocks and a write torn by a crash damages one copy only.
	blockSize = 4096
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// encodeCopy appends one copy (header and payload) to buf[:0].
func encodeCopy(buf []byte, seq uint64, free bool, payload []byte) []byte {
	var flags uint16
	if free {
		flags = flagFree
	}
	buf = append(buf[:0], slotMagic...)
	buf = binary.LittleEndian.AppendUint16(buf, formatVersion)
	buf = binary.LittleEndian.AppendUint16(buf, flags)
	buf = binary.LittleEndian.AppendUint64(buf, seq)
	buf = binary.LittleEndian.AppendUint32(buf, uint32(len(payload)))
	crc := crc32.Update(crc32.Checksum(buf, castagnoli), castagnoli, payload)
	buf = binary.LittleEndian.AppendUint32(buf, crc)
	return append(buf, payload...)
}

// copyState is what a copy holds.
type copyState int

const (
	copyEmpty   copyState = iota // never written
	copyValid                    // a record, or a free mark
	copyDamaged                  // unreadable: reason says why
)

// slotCopy is one decoded copy of a slot.
type slotCopy struct {
	state   copyState
	seq     uint64
	free    bool
	payload []byte // the record's JSON when valid and not free
	reason  string // why it is damaged
}

// decodeCopy reads one copy (the copy's whole extent).
func decodeCopy(b []byte) slotCopy {
	if len(b) < headerSize {
		return slotCopy{state: copyDamaged, reason: "shorter than a copy header"}
	}
	h := b[:headerSize]
	if bytes.Count(h, []byte{0}) == headerSize {
		return slotCopy{state: copyEmpty}
	}
	if string(h[:4]) != slotMagic {
		return slotCopy{state: copyDamaged, reason: fmt.Sprintf("no copy header (magic %q, want %q)", h[:4], slotMagic)}
	}
	if v := binary.LittleEndian.Uint16(h[4:]); v != formatVersion {
		return slotCopy{state: copyDamaged, reason: fmt.Sprintf("format version %d; this worker reads version %d", v, formatVersion)}
	}
	flags := binary.LittleEndian.Uint16(h[6:])
	seq := binary.LittleEndian.Uint64(h[8:])
	n := binary.LittleEndian.Uint32(h[16:])
	if int64(n) > int64(len(b)-headerSize) {
		return slotCopy{state: copyDamaged, reason: fmt.Sprintf("payload length %d exceeds the copy's %d bytes", n, len(b)-headerSize)}
	}
	payload := b[headerSize : headerSize+int(n)]
	crc := crc32.Update(crc32.Checksum(h[:20], castagnoli), castagnoli, payload)
	if crc != binary.LittleEndian.Uint32(h[20:]) {
		return slotCopy{state: copyDamaged, reason: "checksum mismatch (a write torn by a crash, or damage on disk)"}
	}
	if flags&^flagFree != 0 {
		return slotCopy{state: copyDamaged, reason: fmt.Sprintf("unknown flags %#x", flags)}
	}
	return slotCopy{state: copyValid, seq: seq, free: flags&flagFree != 0, payload: payload}
}

// slot is one open slot file.
type slot struct {
	path string

	mu       sync.Mutex
	f        *os.File // open read-write for the journal's lifetime
	copySize int64
	seq      uint64 // highest sequence number written or read
	newest   int    // copy (0 = A, 1 = B) holding the newest valid version; -1 none
	data     []byte // the record's JSON while the slot holds one
	buf      []byte // encoding buffer, reused

	// Background flush (see Journal.Put): flushing is true from a
	// durable write until the flush goroutine that covers it has synced;
	// done is signalled (on mu) when it ends.
	flushing     bool
	done         *sync.Cond
	onFlushError func(path string, err error)
}

// scheduleFlush makes a version just written reach the disk: it starts
// the slot's flush goroutine unless one is pending, which then covers
// this version too (it syncs only once it holds mu, after this write).
// Called with s.mu held.
func (s *slot) scheduleFlush() {
	if !s.flushing {
		s.flushing = true
		go s.flush()
	}
}

// flush fdatasyncs the slot file. It holds s.mu while it syncs, so a
// later write of the slot (a run's next version, its free mark) waits for
// the flush in flight: they are rare and far apart, and a write never
// meets a half-closed file.
func (s *slot) flush() {
	s.mu.Lock()
	err := os.ErrClosed
	if s.f != nil {
		err = flushFile(s.f)
	}
	s.flushing = false
	s.cond().Broadcast()
	s.mu.Unlock()
	// Told unlocked: the callback may log, or use the journal.
	if err != nil && s.onFlushError != nil {
		s.onFlushError(s.path, err)
	}
}

// waitFlushed waits until no flush of the slot runs. Called with s.mu
// held.
func (s *slot) waitFlushed() {
	for s.flushing {
		s.cond().Wait()
	}
}

// cond returns s.done, made on first use. Called with s.mu held.
func (s *slot) cond() *sync.Cond {
	if s.done == nil {
		s.done = sync.NewCond(&s.mu)
	}
	return s.done
}

// write writes a new version (a record's JSON, or a free mark) in place
// into the copy that does not hold the newest valid version; durable
// makes it reach the disk with a background fdatasync (scheduleFlush;
// the file's size and blocks do not change, so that flushes its data
// only). A record too large for the copies grows the slot (see grow),
// durably before write returns. Called with s.mu held.
func (s *slot) write(dir string, payload []byte, free, durable bool) error {
	seq := s.seq + 1
	s.buf = encodeCopy(s.buf, seq, free, payload)
	if int64(len(s.buf)) > s.copySize {
		return s.grow(dir, seq)
	}
	target := 0
	if s.newest == 0 {
		target = 1
	}
	if _, err := s.f.WriteAt(s.buf, int64(target)*s.copySize); err != nil {
		return err
	}
	s.seq, s.newest = seq, target
	if durable {
		s.scheduleFlush()
	}
	return nil
}

// grow replaces the slot file by a larger one whose copy A is the encoded
// version in s.buf (sequence seq): a temporary file written and fsynced,
// renamed over the slot, then the directory fsynced. A crash before the
// rename leaves the old slot file whole.
func (s *slot) grow(dir string, seq uint64) error {
	size := (int64(len(s.buf)) + blockSize - 1) / blockSize * blockSize
	tmp, err := createSlotFile(dir, size, s.buf)
	if err != nil {
		return err
	}
	// Closed before the rename: Windows cannot replace an open file.
	_ = s.f.Close()
	s.f = nil
	if err := os.Rename(tmp, s.path); err != nil {
		_ = os.Remove(tmp)
		s.f, _ = os.OpenFile(s.path, os.O_RDWR, 0) // the old slot file, still in place
		return err
	}
	s.copySize, s.seq, s.newest = size, seq, 0
	if s.f, err = os.OpenFile(s.path, os.O_RDWR, 0); err != nil {
		return err // s.f is nil: later writes fail (os.ErrInvalid)
	}
	return syncDir(dir)
}

// createSlotFile writes a temporary slot file in dir (0600) of two
// copies of copySize bytes each, copy A holding first (an encoded copy,
// or nothing), the rest zeros actually written (so that later in-place
// writes allocate no blocks), fsyncs and closes it, and returns its path
// for the caller to rename.
func createSlotFile(dir string, copySize int64, first []byte) (string, error) {
	f, err := os.CreateTemp(dir, tmpPrefix+"*")
	if err != nil {
		return "", err
	}
	buf := make([]byte, 2*copySize)
	copy(buf, first)
	if _, err = f.Write(buf); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

// openSlot opens the slot file at path and reads both its copies; a
// read error or a size that is not two copies of a multiple of blockSize
// is returned as an error.
func openSlot(path string) (*slot, [2]slotCopy, error) {
	var copies [2]slotCopy
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, copies, err
	}
	fi, err := f.Stat()
	if err == nil && (fi.Size() == 0 || fi.Size()%(2*blockSize) != 0) {
		err = fmt.Errorf("size %d bytes is not two copies of a multiple of %d bytes", fi.Size(), blockSize)
	}
	var b []byte
	if err == nil {
		b = make([]byte, fi.Size())
		_, err = f.ReadAt(b, 0)
	}
	if err != nil {
		_ = f.Close()
		return nil, copies, err
	}
	half := fi.Size() / 2
	copies[0], copies[1] = decodeCopy(b[:half]), decodeCopy(b[half:])
	return &slot{path: path, f: f, copySize: half, newest: -1}, copies, nil
}

// syncDir fsyncs a directory, so that a rename in it is durable. Systems
// that cannot sync a directory (os.ErrInvalid) are left alone.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return fmt.Errorf("syncing run journal %s: %w", filepath.Clean(dir), err)
	}
	return nil
}
