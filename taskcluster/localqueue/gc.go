package localqueue

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// gcInterval is how often (in clock time) expired data is purged.
const gcInterval = 10 * time.Minute

// PurgeExpired deletes, as the Queue's expiration jobs do, every task whose
// `expires` passed (with its runs' artifacts) and every artifact whose own
// `expires` passed, together with their stored bytes and objects. It
// returns how many tasks and artifacts were deleted. CheckExpiry calls it
// every 10 minutes of clock time.
func (s *Server) PurgeExpired() (tasks, artifacts int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.purgeLocked()
}

func (s *Server) purgeLocked() (int, int, error) {
	if s.closed {
		return 0, 0, ErrClosed
	}
	now := s.now()
	s.nextGC = now.Add(gcInterval)
	var taskIDs []string
	for id, t := range s.tasks {
		if !t.Definition.Expires.After(now) {
			taskIDs = append(taskIDs, id)
		}
	}
	gone := map[string]bool{}
	for _, id := range taskIDs {
		gone[id] = true
	}
	var artKeys, objNames, blobKeys []string
	for k, a := range s.artifacts {
		if !gone[a.TaskID] && a.Expires.After(now) {
			continue
		}
		artKeys = append(artKeys, k)
		if a.Blob != "" {
			blobKeys = append(blobKeys, a.Blob)
		}
		if a.ObjectName != "" {
			if o := s.objects[a.ObjectName]; o != nil {
				objNames = append(objNames, o.Name)
				blobKeys = append(blobKeys, o.Blob)
			}
		}
	}
	for name, o := range s.objects {
		if !o.Expires.After(now) && !containsString(objNames, name) {
			objNames = append(objNames, name)
			blobKeys = append(blobKeys, o.Blob)
		}
	}
	if len(taskIDs)+len(artKeys)+len(objNames) == 0 {
		return 0, 0, nil
	}
	err := s.st.db.Update(func(tx *bolt.Tx) error {
		for _, id := range taskIDs {
			if err := tx.Bucket(bucketTasks).Delete([]byte(id)); err != nil {
				return err
			}
		}
		for _, k := range artKeys {
			if err := tx.Bucket(bucketArtifacts).Delete([]byte(k)); err != nil {
				return err
			}
		}
		for _, n := range objNames {
			if err := tx.Bucket(bucketObjects).Delete([]byte(n)); err != nil {
				return err
			}
		}
		for _, b := range blobKeys {
			if err := tx.Bucket(bucketBlobData).Delete([]byte(b)); err != nil {
				return err
			}
			if err := tx.Bucket(bucketBlobs).Delete([]byte(b)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("purging expired data: %w", err)
	}
	for _, id := range taskIDs {
		delete(s.tasks, id)
		delete(s.open, id)
		delete(s.dependents, id)
	}
	for _, k := range artKeys {
		delete(s.artifacts, k)
	}
	for _, n := range objNames {
		delete(s.objects, n)
	}
	var errs []error
	for _, b := range blobKeys {
		delete(s.blobs, b)
		if err := s.removeBlobFile(b); err != nil {
			errs = append(errs, err)
		}
	}
	if len(taskIDs)+len(artKeys) > 0 {
		s.log.Info("purged expired data", "tasks", len(taskIDs), "artifacts", len(artKeys))
	}
	return len(taskIDs), len(artKeys), errors.Join(errs...)
}

// removeBlobFile deletes a blob's file and the directories above it that
// become empty, up to the blobs directory.
func (s *Server) removeBlobFile(key string) error {
	path := s.st.blobPath(key)
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing expired artifact bytes: %w", err)
	}
	root := filepath.Clean(s.st.blobsDir)
	for dir := filepath.Dir(path); dir != root && strings.HasPrefix(dir, root+string(filepath.Separator)); dir = filepath.Dir(dir) {
		if os.Remove(dir) != nil {
			break // not empty (or gone)
		}
	}
	return nil
}
