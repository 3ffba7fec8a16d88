// Package journal is the worker's durable run journal: one small JSON
// record per claimed run, written before the run's sandbox starts and
// dropped when the run is resolved and disposed. A worker process that
// dies (kill -9, OOM, kernel panic) leaves its records behind; the next
// process of the same worker reads them at start-up to kill what is left
// of each run's sandbox, resolve the run and remove its directory (worker
// recovery).
//
// Records live in slots: preallocated files "slot-<n>" in the journal
// directory, reused run after run, as many as the worker's capacity
// (Reserve) plus more when more runs are recorded at once. A run takes a
// free slot, each version of its record is written in place (pwrite of
// the slot's unused copy, then fdatasync), and dropping it marks the slot
// free again. So a run creates and deletes no file, renames nothing and
// changes no file's size or blocks: its durable write is a data flush
// with no metadata (the layout, and why a write torn by a crash loses at
// most that version, are in slot.go). The flush runs in the background
// (see Put): a run's record is in the kernel when Put returns, and on
// disk a data flush later, while the run's sandbox starts. A record too large for its slot
// grows the slot once (a new file, fsynced and renamed over it).
//
// Records an older worker wrote, one file "<taskId>-<runId>.json" each,
// are read too (List) and their files removed when dropped (Remove).
//
// The directory is 0700 and the slot files 0600: records hold the runs'
// temporary task credentials, which stay in a free slot's older copy
// until that copy is overwritten.
package journal

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/taskcluster/tcwire"
)

// Record is what the worker needs to clean up and resolve one run after its
// process died.
type Record struct {
	TaskID string `json:"taskId"`
	RunID  int    `json:"runId"`
	// TakenUntil is the claim's takenUntil on the Queue's clock (as the
	// Queue answered claimWork or the last reclaimTask).
	TakenUntil time.Time `json:"takenUntil"`
	// RunDir is the run's directory (task directory, task log), removed by
	// recovery.
	RunDir string `json:"runDir"`
	// LogPath is the task log file, uploaded by recovery as far as it was
	// written.
	LogPath string `json:"logPath,omitempty"`
	// Credentials are the run's task credentials (temporary, expiring
	// with the claim), used to resolve the run and upload its log.
	Credentials tcwire.Credentials `json:"credentials"`
	// Handles find the run's sandbox again (engines.Handles); zero until
	// the engine reported them.
	Handles engines.Handles `json:"handles"`
	// Expires is the task's expires, the latest expiry its log artifact
	// may have.
	Expires time.Time `json:"expires"`
	// LogObject is the task log's object artifact as the Queue created it
	// ahead of its content (queue/v1 post-artifact-response.json, storage
	// type "object"), nil for s3 or until known: recovery uploads the log
	// with it, since the Queue cannot create an object artifact twice.
	LogObject *ObjectUpload `json:"logObject,omitempty"`
	// PID is the worker process that wrote the record.
	PID int `json:"pid"`
	// Written is when the record was last written (local clock).
	Written time.Time `json:"written"`
}

// LegacyName is the file name an older worker gave the record, one file
// per record: "<taskId>-<runId>.json".
func (r *Record) LegacyName() string { return r.TaskID + "-" + strconv.Itoa(r.RunID) + ".json" }

// ObjectUpload is an object artifact's upload as createArtifact answered
// it: the object's name, project and uploadId, its expiry, and the
// temporary credentials allowed to upload it.
type ObjectUpload struct {
	Name        string             `json:"name"`
	ProjectID   string             `json:"projectId"`
	UploadID    string             `json:"uploadId"`
	Expires     time.Time          `json:"expires"`
	Credentials tcwire.Credentials `json:"credentials"`
}

// File names in the journal directory.
const (
	slotPrefix   = "slot-" // slot files: slot-<n>
	tmpPrefix    = ".tmp-" // a slot file being created; removed by Open
	legacySuffix = ".json" // an older worker's records
)

// runKey identifies a run.
type runKey struct {
	taskID string
	runID  int
}

// Journal is an open run journal directory. Its methods are safe for
// concurrent use, one writer per run.
type Journal struct {
	dir string

	mu     sync.Mutex
	slots  []*slot                 // every usable slot
	free   []*slot                 // slots holding no record
	byRun  map[runKey]*slot        // the slot of each run with a record
	legacy map[runKey]legacyRecord // an older worker's record files
	damage []Damage                // found by Open
	next   int                     // number of the next new slot file
	closed bool
	// flushFailed is called when a background flush fails (OnFlushError).
	flushFailed atomic.Pointer[func(path string, err error)]
}

// flushFile flushes a slot file's data to disk; tests replace it.
var flushFile = datasync

// OnFlushError sets f to be called, from a background goroutine, when a
// record version that Put wrote could not be flushed to disk (path: the
// slot file; err: the fdatasync error). The version is still in the
// kernel, so a worker process that dies loses nothing; a machine crash
// could. Set it before the first Put.
func (j *Journal) OnFlushError(f func(path string, err error)) { j.flushFailed.Store(&f) }

// reportFlushError is every slot's onFlushError.
func (j *Journal) reportFlushError(path string, err error) {
	if f := j.flushFailed.Load(); f != nil && *f != nil {
		(*f)(path, err)
	}
}

// legacyRecord is a record file of an older worker, as Open read it.
type legacyRecord struct {
	path string
	rec  Record
}

// Damage is a journal file, or one copy of a slot, that Open could not
// read. Error says which, why and what became of it.
type Damage struct {
	// File is the path of the slot or record file.
	File string
	// Copy is "A" or "B" for a copy of a slot, "" for a whole file.
	Copy string
	// Reason is what is wrong with it.
	Reason string
	// OtherCopyUsed is true when the slot's other copy was valid and was
	// read instead: only the damaged copy's version is lost (a version
	// whose write a crash interrupted, or one an older version replaces).
	// Otherwise the file is left in place, out of use, for an operator.
	OtherCopyUsed bool
}

func (d Damage) Error() string {
	if d.Copy == "" {
		return fmt.Sprintf("run journal file %s: %s; left in place and out of use: remove it once looked at", d.File, d.Reason)
	}
	if d.OtherCopyUsed {
		return fmt.Sprintf("run journal slot %s, copy %s: %s; the other copy was read instead", d.File, d.Copy, d.Reason)
	}
	return fmt.Sprintf("run journal slot %s, copy %s: %s; the slot has no readable copy, left in place and out of use: remove it once looked at", d.File, d.Copy, d.Reason)
}

// Open opens the journal in dir, creating the directory (0700) if needed,
// and reads it: every slot file, the record files of an older worker,
// removing the temporary files of a slot creation that a crash
// interrupted. Unreadable files and copies are not errors: List reports
// them. The error is a directory that cannot be created or listed.
func Open(dir string) (*Journal, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating run journal %s: %w", dir, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("run journal %s: %w", dir, err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("reading run journal: %w", err)
	}
	j := &Journal{dir: dir, byRun: map[runKey]*slot{}, legacy: map[runKey]legacyRecord{}}
	for _, e := range entries {
		name, path := e.Name(), filepath.Join(dir, e.Name())
		switch {
		case strings.HasPrefix(name, tmpPrefix):
			_ = os.Remove(path)
		case strings.HasPrefix(name, slotPrefix):
			n, err := strconv.Atoi(name[len(slotPrefix):])
			if err != nil || n < 0 {
				continue // not ours
			}
			j.next = max(j.next, n+1)
			j.loadSlot(path)
		case strings.HasSuffix(name, legacySuffix):
			j.loadLegacy(path)
		}
	}
	return j, nil
}

// Dir is the journal's directory.
func (j *Journal) Dir() string { return j.dir }

// loadSlot opens one slot file and takes it into use: holding the record
// of its newest valid copy, or free.
func (j *Journal) loadSlot(path string) {
	s, copies, err := openSlot(path)
	if err != nil {
		j.damage = append(j.damage, Damage{File: path, Reason: err.Error()})
		return
	}
	recs := [2]*Record{}
	for i := range copies {
		c := &copies[i]
		if c.state != copyValid || c.free {
			continue
		}
		var r Record
		err := json.Unmarshal(c.payload, &r)
		if err == nil && r.TaskID == "" {
			err = errors.New("no taskId")
		}
		if err != nil {
			c.state, c.reason = copyDamaged, "record unreadable: "+err.Error()
			continue
		}
		recs[i] = &r
	}
	for i, c := range copies {
		if c.state == copyValid && (s.newest < 0 || c.seq > copies[s.newest].seq) {
			s.newest = i
		}
		s.seq = max(s.seq, c.seq)
	}
	for i, c := range copies {
		if c.state == copyDamaged {
			j.damage = append(j.damage, Damage{File: path, Copy: string(rune('A' + i)), Reason: c.reason, OtherCopyUsed: s.newest >= 0})
		}
	}
	damaged := copies[0].state == copyDamaged || copies[1].state == copyDamaged
	if s.newest < 0 && damaged {
		_ = s.f.Close()
		return
	}
	s.onFlushError = j.reportFlushError
	j.slots = append(j.slots, s)
	if s.newest < 0 || copies[s.newest].free {
		j.free = append(j.free, s)
		return
	}
	r := recs[s.newest]
	k := runKey{r.TaskID, r.RunID}
	s.data = copies[s.newest].payload
	if other := j.byRun[k]; other != nil {
		// The same run in two slots (not something this package
		// writes; a copied slot file, say): the later version counts,
		// the other slot is marked free.
		var o Record
		_ = json.Unmarshal(other.data, &o)
		if !r.Written.After(o.Written) {
			s, other = other, s
		}
		other.data = nil
		if other.write(j.dir, nil, true, false) == nil {
			j.free = append(j.free, other)
		}
	}
	j.byRun[k] = s
}

// loadLegacy reads one record file of an older worker.
func (j *Journal) loadLegacy(path string) {
	data, err := os.ReadFile(path)
	var r Record
	if err == nil {
		err = json.Unmarshal(data, &r)
	}
	if err == nil && r.TaskID == "" {
		err = errors.New("no taskId")
	}
	if err != nil {
		j.damage = append(j.damage, Damage{File: path, Reason: "record unreadable: " + err.Error()})
		return
	}
	j.legacy[runKey{r.TaskID, r.RunID}] = legacyRecord{path: path, rec: r}
}

// Reserve makes sure the journal has at least n slots, creating the
// missing ones (each written in full with zeros and fsynced, renamed into
// place, then one fsync of the directory): a worker of capacity n records
// its runs without creating files.
func (j *Journal) Reserve(n int) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return os.ErrClosed
	}
	_, err := j.addSlots(n - len(j.slots))
	return err
}

// addSlots creates k new free slots and returns the last one.
func (j *Journal) addSlots(k int) (*slot, error) {
	var last *slot
	for range k {
		tmp, err := createSlotFile(j.dir, blockSize, nil)
		if err != nil {
			return nil, fmt.Errorf("creating a run journal slot in %s: %w", j.dir, err)
		}
		path := filepath.Join(j.dir, slotPrefix+strconv.Itoa(j.next))
		if err := os.Rename(tmp, path); err != nil {
			_ = os.Remove(tmp)
			return nil, fmt.Errorf("creating a run journal slot: %w", err)
		}
		j.next++
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			return nil, fmt.Errorf("opening a run journal slot: %w", err)
		}
		last = &slot{path: path, f: f, copySize: blockSize, newest: -1, onFlushError: j.reportFlushError}
		j.slots = append(j.slots, last)
		j.free = append(j.free, last)
	}
	if last == nil {
		return nil, nil
	}
	return last, syncDir(j.dir)
}

// slotFor returns the slot of the run k, taking a free one (or a new one)
// when it has none; fresh says it was taken now.
func (j *Journal) slotFor(k runKey) (s *slot, fresh bool, err error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return nil, false, os.ErrClosed
	}
	if s := j.byRun[k]; s != nil {
		return s, false, nil
	}
	if len(j.free) == 0 {
		if _, err := j.addSlots(1); err != nil {
			return nil, false, err
		}
	}
	s = j.free[len(j.free)-1]
	j.free = j.free[:len(j.free)-1]
	j.byRun[k] = s
	return s, true, nil
}

// Put writes r into its run's slot (taking a free slot for a run without
// one), replacing the earlier version of the run's record: after a crash
// the slot holds the new version, or the one before. It sets r's PID and
// Written. The error names the slot file.
//
// Put returns once the kernel holds the new version (pwrite): a worker
// process that dies after Put, by kill -9, OOM or panic, loses nothing.
// The version reaches the disk by a data flush (fdatasync) that Put
// starts and does not wait for, so a run's sandbox starts while its
// record is flushed (about 0.3 ms here, most of a trivial task's start);
// Sync waits for it, and a failure goes to OnFlushError. Only a machine
// crash in that window loses the version, and then the run's processes
// die with the machine: the run is left to the Queue, which resolves it
// claim-expired when its claim ends.
func (j *Journal) Put(r *Record) error {
	r.PID = os.Getpid()
	r.Written = time.Now()
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	k := runKey{r.TaskID, r.RunID}
	s, fresh, err := j.slotFor(k)
	if err != nil {
		return fmt.Errorf("writing run record: %w", err)
	}
	s.mu.Lock()
	err = s.write(j.dir, data, false, true)
	if err == nil {
		s.data = data
	}
	usable := s.f != nil
	s.mu.Unlock()
	if err != nil {
		if fresh && usable {
			j.mu.Lock()
			delete(j.byRun, k)
			j.free = append(j.free, s)
			j.mu.Unlock()
		}
		return fmt.Errorf("writing run record to %s: %w", s.path, err)
	}
	return nil
}

// Remove drops the run's record: its slot is marked free (written in
// place, not synced) and an older worker's record file is deleted. A run
// without a record is not an error.
//
// The removal is not synced to disk: a record that a machine crash brings
// back names a run that was resolved and disposed, and recovering it again
// is harmless (the Queue answers the resolution 409, the run directory and
// cgroup are gone, process groups of an earlier boot are ignored). A
// worker process that dies loses nothing the kernel already has.
func (j *Journal) Remove(taskID string, runID int) error {
	k := runKey{taskID, runID}
	j.mu.Lock()
	s := j.byRun[k]
	delete(j.byRun, k)
	legacy, hasLegacy := j.legacy[k]
	delete(j.legacy, k)
	j.mu.Unlock()
	var errs []error
	if s != nil {
		s.mu.Lock()
		err := s.write(j.dir, nil, true, false)
		s.data = nil
		s.mu.Unlock()
		if err != nil {
			// Neither free nor held: the record stays on disk for the
			// next start, which recovers the run again (harmless).
			errs = append(errs, fmt.Errorf("marking run record free in %s: %w", s.path, err))
		} else {
			j.mu.Lock()
			j.free = append(j.free, s)
			j.mu.Unlock()
		}
	}
	if hasLegacy {
		if err := os.Remove(legacy.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("removing run record: %w", err))
		}
	}
	return errors.Join(errs...)
}

// List returns every record the journal holds, sorted by taskId and runId
// (a run in a slot and in an older worker's file once, from its slot),
// and what Open could not read.
func (j *Journal) List() (recs []*Record, bad []Damage, err error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, s := range j.byRun {
		s.mu.Lock()
		var r Record
		err := json.Unmarshal(s.data, &r)
		s.mu.Unlock()
		if err != nil {
			return nil, nil, fmt.Errorf("run journal slot %s: %w", s.path, err)
		}
		recs = append(recs, &r)
	}
	for k, l := range j.legacy {
		if j.byRun[k] == nil {
			r := l.rec
			recs = append(recs, &r)
		}
	}
	slices.SortFunc(recs, func(a, b *Record) int {
		return cmp.Or(strings.Compare(a.TaskID, b.TaskID), cmp.Compare(a.RunID, b.RunID))
	})
	return recs, slices.Clone(j.damage), nil
}

// Sync waits until every version Put wrote before the call is on disk
// (or its flush failed, which OnFlushError was told).
func (j *Journal) Sync() {
	j.mu.Lock()
	slots := slices.Clone(j.slots)
	j.mu.Unlock()
	for _, s := range slots {
		s.mu.Lock()
		s.waitFlushed()
		s.mu.Unlock()
	}
}

// Close waits for the flushes in flight (Sync) and closes the slot files;
// later Put, Remove and Reserve calls fail with os.ErrClosed. Closing a
// nil or closed Journal does nothing.
func (j *Journal) Close() error {
	if j == nil {
		return nil
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return nil
	}
	j.closed = true
	var errs []error
	for _, s := range j.slots {
		s.mu.Lock()
		s.waitFlushed()
		if s.f != nil {
			errs = append(errs, s.f.Close())
		}
		s.mu.Unlock()
	}
	return errors.Join(errs...)
}
