package chainoftrust

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash"
	"io"
	"sync"

	"github.com/workergen/workergen/task"
)

// recorder is the run's artifact sink as the plugins after chainoftrust
// see it: it passes every artifact on and records the sha256 of the
// unencoded content of each file artifact that was published. The hash is
// taken while the sink reads the content (no extra read); a sink that did
// not read it to the end gets it read once more.
type recorder struct {
	inner task.ArtifactSink

	mu     sync.Mutex
	hashes map[string]string // artifact name -> hex sha256
}

var (
	_ task.ArtifactSink     = (*recorder)(nil)
	_ task.ArtifactPreparer = (*recorder)(nil)
	_ task.EncodingReporter = (*recorder)(nil)
)

// PrepareArtifact passes a on to the inner sink when it prepares
// artifacts; the hash is taken when a is published.
func (r *recorder) PrepareArtifact(a task.Artifact) { task.PrepareArtifact(r.inner, a) }

// StoredEncoding is the inner sink's.
func (r *recorder) StoredEncoding(a task.Artifact) string { return task.StoredEncoding(r.inner, a) }

// Publish publishes a and, for a file artifact, records its sha256.
func (r *recorder) Publish(ctx context.Context, a task.Artifact) error {
	if a.Kind != task.ArtifactFile || a.Open == nil {
		return r.inner.Publish(ctx, a)
	}
	var (
		mu  sync.Mutex
		sum string
	)
	open := a.Open
	a.Open = func() (io.ReadCloser, error) {
		rc, err := open()
		if err != nil {
			return nil, err
		}
		return &hashingReader{rc: rc, h: sha256.New(), done: func(s string) {
			mu.Lock()
			sum = s
			mu.Unlock()
		}}, nil
	}
	if err := r.inner.Publish(ctx, a); err != nil {
		return err
	}
	mu.Lock()
	got := sum
	mu.Unlock()
	if got == "" {
		var err error
		if got, err = hashContent(open); err != nil {
			return task.InternalError(errors.Join(errors.New("chain of trust: hashing artifact "+a.Name), err))
		}
	}
	r.mu.Lock()
	r.hashes[a.Name] = got
	r.mu.Unlock()
	return nil
}

func (r *recorder) snapshot() map[string]ArtifactHash {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]ArtifactHash, len(r.hashes))
	for k, v := range r.hashes {
		out[k] = ArtifactHash{SHA256: v}
	}
	return out
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.hashes)
}

func hashContent(open func() (io.ReadCloser, error)) (string, error) {
	rc, err := open()
	if err != nil {
		return "", err
	}
	defer rc.Close()
	h := sha256.New()
	if _, err := io.Copy(h, rc); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// hashingReader hashes what is read through it; at EOF it reports the
// hash of the whole content.
type hashingReader struct {
	rc   io.ReadCloser
	h    hash.Hash
	done func(string)
	end  bool
}

func (h *hashingReader) Read(p []byte) (int, error) {
	n, err := h.rc.Read(p)
	h.h.Write(p[:n])
	if err == io.EOF && !h.end {
		h.end = true
		h.done(hex.EncodeToString(h.h.Sum(nil)))
	}
	return n, err
}

func (h *hashingReader) Close() error { return h.rc.Close() }
