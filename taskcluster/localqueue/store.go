package localqueue

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Bucket names in queue.db. Values are JSON.
var (
	bucketTasks     = []byte("tasks")     // taskId -> taskRecord
	bucketArtifacts = []byte("artifacts") // artifactKey -> artifactRecord
	bucketObjects   = []byte("objects")   // object name -> objectRecord
	bucketBlobs     = []byte("blobs")     // blob key -> blobRecord
	bucketBlobData  = []byte("blobdata")  // blob key -> bytes of an inline blob (not JSON)
	bucketMeta      = []byte("meta")      // secrets
)

// store persists the server's state in a bbolt database and the artifact
// bytes in files next to it. It holds no lock of its own: the Server
// serialises writes.
type store struct {
	db       *bolt.DB
	blobsDir string
}

// state is everything loaded from the database at start.
type loadedState struct {
	tasks     map[string]*taskRecord
	artifacts map[string]*artifactRecord
	objects   map[string]*objectRecord
	blobs     map[string]*blobRecord
	secret    []byte
	issuerKey string
}

func openStore(dir string, noSync bool) (*store, *loadedState, error) {
	if dir == "" {
		return nil, nil, errors.New("opening localqueue store: Options.Dir is empty")
	}
	blobs := filepath.Join(dir, "blobs")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		return nil, nil, fmt.Errorf("opening localqueue store: %w", err)
	}
	db, err := bolt.Open(filepath.Join(dir, "queue.db"), 0o600, &bolt.Options{Timeout: 10 * time.Second, NoSync: noSync})
	if err != nil {
		return nil, nil, fmt.Errorf("opening localqueue database in %s: %w", dir, err)
	}
	st := &store{db: db, blobsDir: blobs}
	ls, err := st.load()
	if err != nil {
		_ = db.Close()
		return nil, nil, err
	}
	return st, ls, nil
}

func (s *store) close() error { return s.db.Close() }

func (s *store) load() (*loadedState, error) {
	ls := &loadedState{
		tasks:     map[string]*taskRecord{},
		artifacts: map[string]*artifactRecord{},
		objects:   map[string]*objectRecord{},
		blobs:     map[string]*blobRecord{},
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketTasks, bucketArtifacts, bucketObjects, bucketBlobs, bucketBlobData, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		secret, err := metaSecret(meta, "signing-secret")
		if err != nil {
			return err
		}
		ls.secret = secret
		issuer, err := metaSecret(meta, "issuer-access-token")
		if err != nil {
			return err
		}
		ls.issuerKey = hex.EncodeToString(issuer)
		if err := loadBucket(tx, bucketTasks, func(k string, v []byte) error {
			r := &taskRecord{}
			ls.tasks[k] = r
			return json.Unmarshal(v, r)
		}); err != nil {
			return err
		}
		if err := loadBucket(tx, bucketArtifacts, func(k string, v []byte) error {
			r := &artifactRecord{}
			ls.artifacts[k] = r
			return json.Unmarshal(v, r)
		}); err != nil {
			return err
		}
		if err := loadBucket(tx, bucketObjects, func(k string, v []byte) error {
			r := &objectRecord{}
			ls.objects[k] = r
			return json.Unmarshal(v, r)
		}); err != nil {
			return err
		}
		return loadBucket(tx, bucketBlobs, func(k string, v []byte) error {
			r := &blobRecord{}
			ls.blobs[k] = r
			return json.Unmarshal(v, r)
		})
	})
	if err != nil {
		return nil, fmt.Errorf("loading localqueue state: %w", err)
	}
	return ls, nil
}

func metaSecret(b *bolt.Bucket, name string) ([]byte, error) {
	if v := b.Get([]byte(name)); v != nil {
		return append([]byte(nil), v...), nil
	}
	v := make([]byte, 32)
	if _, err := rand.Read(v); err != nil {
		return nil, err
	}
	return v, b.Put([]byte(name), v)
}

func loadBucket(tx *bolt.Tx, name []byte, fn func(k string, v []byte) error) error {
	return tx.Bucket(name).ForEach(func(k, v []byte) error {
		if err := fn(string(k), v); err != nil {
			return fmt.Errorf("decoding %s/%q: %w", name, k, err)
		}
		return nil
	})
}

// write is one batch of records to persist atomically.
type write struct {
	tasks     []*taskRecord
	artifacts []*artifactRecord
	objects   []*objectRecord
	blobs     []*blobRecord
	// blobData are the bytes of inline blobs, by key; nil deletes a
	// blob's inline bytes.
	blobData map[string][]byte
}

func (s *store) commit(w write) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		for _, t := range w.tasks {
			if err := putJSON(tx, bucketTasks, t.TaskID, t); err != nil {
				return err
			}
		}
		for _, a := range w.artifacts {
			if err := putJSON(tx, bucketArtifacts, artifactKey(a.TaskID, a.RunID, a.Name), a); err != nil {
				return err
			}
		}
		for _, o := range w.objects {
			if err := putJSON(tx, bucketObjects, o.Name, o); err != nil {
				return err
			}
		}
		for _, b := range w.blobs {
			if err := putJSON(tx, bucketBlobs, b.Key, b); err != nil {
				return err
			}
		}
		for k, data := range w.blobData {
			var err error
			if data == nil {
				err = tx.Bucket(bucketBlobData).Delete([]byte(k))
			} else {
				err = tx.Bucket(bucketBlobData).Put([]byte(k), data)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("writing localqueue state: %w", err)
	}
	return nil
}

func putJSON(tx *bolt.Tx, bucket []byte, key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return tx.Bucket(bucket).Put([]byte(key), data)
}

// artifactKey orders a task's artifacts by run, then name.
func artifactKey(taskID string, runID int, name string) string {
	return taskID + "\x00" + fmt.Sprintf("%04d", runID) + "\x00" + name
}

// artifactPrefix is the key prefix of one run's artifacts.
func artifactPrefix(taskID string, runID int) string {
	return taskID + "\x00" + fmt.Sprintf("%04d", runID) + "\x00"
}

// inlineData returns a copy of an inline blob's bytes.
func (s *store) inlineData(key string) ([]byte, error) {
	var data []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketBlobData).Get([]byte(key))
		if v == nil {
			return fmt.Errorf("the bytes of blob %s are missing from queue.db", key)
		}
		data = bytes.Clone(v)
		return nil
	})
	return data, err
}

// blobPath is where a blob's bytes live (a file blob's; an inline blob's
// once ArtifactPath wrote them out).
func (s *store) blobPath(key string) string {
	return filepath.Join(s.blobsDir, filepath.FromSlash(key))
}

// newBlobKey returns a fresh storage key, a path below Dir/blobs that
// still reads well: "<prefix>/<8 random hex digits>-<name>", name's
// segments made safe for a file system (no control or Windows-reserved
// characters, no "." or ".." segments) and joined with "~", the whole file
// name cut to 240 bytes. One directory per prefix (a task, or "objects")
// and one file per blob: every directory the worker's uploads made was a
// new inode to allocate and later delete, the costliest part of storing a
// small log. The random part keeps artifacts apart even when one name is
// a prefix of another ("public/a" and "public/a/b") or names meet after
// cutting.
func newBlobKey(prefix, name string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	var segs []string
	for _, seg := range strings.Split(name, "/") {
		if seg = safeSegment(seg); seg != "" {
			segs = append(segs, seg)
		}
	}
	file := hex.EncodeToString(b) + "-" + strings.Join(segs, "~")
	if len(segs) == 0 {
		file += "data"
	}
	if len(file) > 240 {
		file = strings.ToValidUTF8(file[:240], "")
	}
	return prefix + "/" + file
}

func safeSegment(seg string) string {
	if seg == "." || seg == ".." {
		return "_" + seg
	}
	out := []rune{}
	size := 0
	for _, r := range seg {
		if r < 0x20 || r == 0x7f || strings.ContainsRune(`\:*?"<>|`, r) {
			r = '_'
		}
		if size += len(string(r)); size > 200 {
			break
		}
		out = append(out, r)
	}
	return string(out)
}

func itoa(i int) string { return strconv.Itoa(i) }
