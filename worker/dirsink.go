package worker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/workergen/workergen/task"
)

// DirSink is the artifact sink of `run` mode: file artifacts are copied
// (unencoded) to <Dir>/artifacts/<name>, and every artifact is recorded for
// the run's manifest.json.
type DirSink struct {
	Dir string

	mu      sync.Mutex
	entries map[string]ManifestArtifact
}

// ManifestArtifact is one artifact in run mode's manifest.json.
type ManifestArtifact struct {
	Name            string    `json:"name"`
	StorageType     string    `json:"storageType"`               // file, error, reference, link
	Path            string    `json:"path,omitempty"`            // relative to the output directory
	SourcePath      string    `json:"sourcePath,omitempty"`      // host path it was collected from
	ContentType     string    `json:"contentType,omitempty"`     // as it would be uploaded
	ContentEncoding string    `json:"contentEncoding,omitempty"` // as it would be uploaded
	Size            int64     `json:"size"`                      // bytes, unencoded
	SHA256          string    `json:"sha256,omitempty"`          // hex, of the unencoded content
	Expires         time.Time `json:"expires"`
	Reason          string    `json:"reason,omitempty"`  // error artifacts
	Message         string    `json:"message,omitempty"` // error artifacts
	URL             string    `json:"url,omitempty"`     // reference artifacts
	LinkTo          string    `json:"linkTo,omitempty"`  // link artifacts
}

var _ task.ArtifactSink = (*DirSink)(nil)

// Publish stores a. Publishing a name twice is an error, except as the
// Queue allows it (createArtifact): a reference artifact may be replaced
// by a reference or a link, as the tasklog plugin replaces the live log's
// reference to the running stream by a link to the complete log.
func (s *DirSink) Publish(ctx context.Context, a task.Artifact) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	clean := filepath.Clean(filepath.FromSlash(a.Name))
	if a.Name == "" || filepath.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, ".."+string(filepath.Separator)) {
		return fmt.Errorf("artifact name %q cannot be stored under the output directory", a.Name)
	}
	m := ManifestArtifact{Name: a.Name, StorageType: string(a.Kind), Expires: a.Expires.UTC(), Size: a.Size,
		Reason: a.Reason, Message: a.Message, URL: a.URL, LinkTo: a.LinkTo, SourcePath: a.Path}
	if err := s.reserve(a.Name, a.Kind); err != nil {
		return err
	}
	if a.Kind == task.ArtifactFile {
		rel := filepath.Join("artifacts", clean)
		dst := filepath.Join(s.Dir, rel)
		size, sum, err := copyArtifact(a, dst)
		if err != nil {
			s.release(a.Name)
			return fmt.Errorf("storing artifact %s: %w", a.Name, err)
		}
		m.Path, m.Size, m.SHA256 = filepath.ToSlash(rel), size, sum
		m.ContentType, m.ContentEncoding = a.ContentType, a.ContentEncoding
		if m.ContentEncoding == "" {
			m.ContentEncoding = "identity"
		}
	} else {
		m.Size = 0
	}
	s.mu.Lock()
	s.entries[a.Name] = m
	s.mu.Unlock()
	return nil
}

// reserve claims name for an artifact of kind: refused when the name is
// taken, unless a reference is replaced by a reference or a link.
func (s *DirSink) reserve(name string, kind task.ArtifactKind) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.entries == nil {
		s.entries = map[string]ManifestArtifact{}
	}
	if old, dup := s.entries[name]; dup {
		replaceable := old.StorageType == string(task.ArtifactReference) &&
			(kind == task.ArtifactReference || kind == task.ArtifactLink)
		if !replaceable {
			return fmt.Errorf("artifact %s published twice", name)
		}
	}
	s.entries[name] = ManifestArtifact{}
	return nil
}

func (s *DirSink) release(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.entries, name)
}

func copyArtifact(a task.Artifact, dst string) (int64, string, error) {
	if a.Open == nil {
		return 0, "", fmt.Errorf("file artifact without content")
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return 0, "", err
	}
	src, err := a.Open()
	if err != nil {
		return 0, "", err
	}
	defer src.Close()
	f, err := os.Create(dst)
	if err != nil {
		return 0, "", err
	}
	h := sha256.New()
	sw := &sparseWriter{f: f}
	n, err := io.CopyBuffer(io.MultiWriter(sw, h), src, make([]byte, 1<<20))
	if err == nil {
		err = sw.finish()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, "", err
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}

// Artifacts returns the recorded artifacts sorted by name.
func (s *DirSink) Artifacts() []ManifestArtifact {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ManifestArtifact, 0, len(s.entries))
	for _, m := range s.entries {
		if m.Name != "" {
			out = append(out, m)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Manifest is run mode's <output>/manifest.json.
type Manifest struct {
	TaskID     string             `json:"taskId"`
	RunID      int                `json:"runId"`
	Profile    string             `json:"profile"`
	Resolution string             `json:"resolution"` // completed, failed, or exception/<reason>
	ExitCode   int                `json:"exitCode"`   // -1 when no command exited
	Duration   float64            `json:"durationSeconds"`
	Reasons    []string           `json:"reasons,omitempty"`
	Log        string             `json:"log"` // relative to the output directory
	Artifacts  []ManifestArtifact `json:"artifacts"`
}

func writeJSONFile(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}
