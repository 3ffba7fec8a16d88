// Package journal is the worker's durable run journal: one small JSON file
// per claimed run, written before the run's sandbox starts and removed when
// the run is resolved and disposed. A worker process that dies (kill -9,
// OOM, kernel panic) leaves its records behind; the next process of the
// same worker reads them at start-up to kill what is left of each run's
// sandbox, resolve the run and remove its directory (worker recovery).
//
// Durability: a record is written to a temporary file in the journal
// directory, fsynced, renamed over the record's name and the directory is
// fsynced, so after a crash a record is either the old or the new version,
// never a torn one. A record's removal is not synced (see Remove). The
// directory is 0700 and records are 0600 (os.CreateTemp's mode; they hold
// the run's temporary task credentials).
package journal

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
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

// Name is the record's file name: "<taskId>-<runId>.json".
func (r *Record) Name() string { return r.TaskID + "-" + strconv.Itoa(r.RunID) + ".json" }

// Journal is a directory of records.
type Journal struct {
	Dir string
}

// Open returns the journal in dir, creating the directory (0700) if needed.
func Open(dir string) (*Journal, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating run journal %s: %w", dir, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("run journal %s: %w", dir, err)
	}
	return &Journal{Dir: dir}, nil
}

// Put writes r durably (temporary file, fsync, rename, fsync of the
// directory), replacing an earlier version of the same run's record.
func (j *Journal) Put(r *Record) error {
	r.PID = os.Getpid()
	r.Written = time.Now()
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(j.Dir, ".tmp-*")
	if err != nil {
		return fmt.Errorf("writing run record: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("writing run record: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("syncing run record: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing run record: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(j.Dir, r.Name())); err != nil {
		return fmt.Errorf("writing run record: %w", err)
	}
	ok = true
	return j.syncDir()
}

// Remove deletes the run's record; a missing record is not an error.
//
// The removal is not synced to disk: a record that a machine crash brings
// back names a run that was resolved and disposed, and recovering it again
// is harmless (the Queue answers the resolution 409, the run directory and
// cgroup are gone, process groups of an earlier boot are ignored). A
// worker process that dies loses nothing the kernel already has.
func (j *Journal) Remove(taskID string, runID int) error {
	r := Record{TaskID: taskID, RunID: runID}
	err := os.Remove(filepath.Join(j.Dir, r.Name()))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing run record: %w", err)
	}
	return nil
}

func (j *Journal) syncDir() error {
	d, err := os.Open(j.Dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return fmt.Errorf("syncing run journal: %w", err)
	}
	return nil
}

// List returns every record, sorted by name, and removes temporary files
// a crash left behind. A record that cannot be read or parsed is returned
// in bad (file paths) and left in place for an operator to look at.
func (j *Journal) List() (recs []*Record, bad []string, err error) {
	entries, err := os.ReadDir(j.Dir)
	if err != nil {
		return nil, nil, fmt.Errorf("reading run journal: %w", err)
	}
	sort.Slice(entries, func(a, b int) bool { return entries[a].Name() < entries[b].Name() })
	for _, e := range entries {
		path := filepath.Join(j.Dir, e.Name())
		if strings.HasPrefix(e.Name(), ".tmp-") {
			_ = os.Remove(path)
			continue
		}
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		data, err := os.ReadFile(path)
		var r Record
		if err == nil {
			err = json.Unmarshal(data, &r)
		}
		if err != nil || r.TaskID == "" {
			bad = append(bad, path)
			continue
		}
		recs = append(recs, &r)
	}
	return recs, bad, nil
}
