package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/workergen/workergen/task"
	"github.com/workergen/workergen/taskcluster"
	"github.com/workergen/workergen/worker/metrics"
)

// queueSink publishes a run's artifacts to the Queue (queue.createArtifact
// and, for file artifacts, the upload it answers with). Calls are signed with
// the run's current task credentials (the client's credentials source is the
// run's holder, swapped by every reclaim).
type queueSink struct {
	queue       *taskcluster.Queue
	taskID      string
	runID       int
	storageType string            // taskcluster.StorageS3 or StorageObject
	tmpDir      string            // for gzip-encoded copies; removed with the run
	metrics     *metrics.Recorder // nil: no metrics
	log         *slog.Logger      // the run's; nil: no debug lines

	// bg bounds the background createArtifact calls of PrepareArtifact
	// (nil: context.Background()); deadline is the task's deadline, which
	// no run outlives (zero: unknown).
	bg       context.Context
	deadline time.Time
	// noLength names file artifacts whose createArtifact request leaves
	// contentLength out (prepared ones, recovery's task log), so that an
	// early and a late request are identical.
	noLength map[string]bool
	// created, when set, is told of every early createArtifact answer
	// (the run's journal record keeps the task log's object upload).
	created func(name string, resp *taskcluster.PostArtifactResponse)

	mu       sync.Mutex
	prepared map[string]*preparedArtifact // by artifact name
}

var _ task.ArtifactSink = (*queueSink)(nil)

// Publish creates artifact a. Failures are exception/resource-unavailable
// (the Queue or the storage behind it did not take the artifact), except a
// 4xx answer for a request the worker built wrongly, which is
// internal-error.
func (s *queueSink) Publish(ctx context.Context, a task.Artifact) error {
	err := s.publish(ctx, a)
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if code := taskcluster.StatusCode(err); code >= 400 && code < 500 && code != 409 && code != 408 && code != 429 {
		return task.InternalError(fmt.Errorf("artifact %s: %w", a.Name, err))
	}
	return task.ResourceUnavailable(fmt.Errorf("artifact %s: %w", a.Name, err))
}

func (s *queueSink) publish(ctx context.Context, a task.Artifact) error {
	var req *taskcluster.PostArtifactRequest
	switch a.Kind {
	case task.ArtifactFile:
		return s.upload(ctx, a)
	case task.ArtifactError:
		req = taskcluster.ErrorArtifact(a.Reason, a.Message, a.Expires)
	case task.ArtifactReference:
		ct := a.ContentType
		if ct == "" {
			ct = "text/plain; charset=utf-8"
		}
		req = taskcluster.ReferenceArtifact(a.URL, ct, a.Expires)
	case task.ArtifactLink:
		req = taskcluster.LinkArtifact(a.LinkTo, a.ContentType, a.Expires)
	default:
		return fmt.Errorf("artifact %s: unknown kind %q", a.Name, a.Kind)
	}
	_, err := s.queue.CreateArtifact(ctx, s.taskID, s.runID, a.Name, req)
	if s.log != nil && err == nil {
		s.log.Debug("artifact created", "name", a.Name, "kind", a.Kind)
	}
	return err
}

// StoredEncoding is what upload sends: object artifacts unencoded, s3
// ones with a.ContentEncoding.
func (s *queueSink) StoredEncoding(a task.Artifact) string {
	if s.storageType == taskcluster.StorageObject || a.ContentEncoding == "" {
		return "identity"
	}
	return a.ContentEncoding
}

// upload sends a file artifact. For s3 with contentEncoding gzip the content
// is compressed first (taskcluster.GzipEncode: in memory up to 1 MiB of
// output, else a temporary file), because the PUT must declare its exact
// Content-Length; memory use does not depend on the file's size.
// Object artifacts are uploaded unencoded (the Object service's putUrl
// method fixes the headers).
func (s *queueSink) upload(ctx context.Context, a task.Artifact) error {
	if a.Open == nil {
		return fmt.Errorf("file artifact %s has no content", a.Name)
	}
	open := taskcluster.Opener(a.Open)
	size := a.Size
	encoding := s.StoredEncoding(a)
	if encoding == "identity" {
		encoding = ""
	}
	if encoding == "gzip" {
		enc, err := taskcluster.GzipEncode(open, s.tmpDir)
		if err != nil {
			return fmt.Errorf("compressing artifact %s: %w", a.Name, err)
		}
		defer enc.Release()
		size = enc.Size
		open = enc.Open
	} else if size < 0 {
		n, err := measure(a.Open)
		if err != nil {
			return err
		}
		size = n
	}
	started := time.Now()
	up := &taskcluster.ArtifactUpload{
		StorageType:       s.storageType,
		ContentType:       fileContentType(a),
		ContentEncoding:   encoding,
		ContentLength:     size,
		OmitContentLength: s.lengthless(a.Name),
		Expires:           a.Expires,
		Open:              open,
	}
	err := s.uploadPrepared(ctx, a, up)
	if errors.Is(err, errNotPrepared) {
		err = s.queue.UploadArtifact(ctx, s.taskID, s.runID, a.Name, up)
	}
	s.observeUpload(a, size, started, err)
	return err
}

// fileContentType is the content type a file artifact is created with.
func fileContentType(a task.Artifact) string {
	if a.ContentType == "" {
		return "application/octet-stream"
	}
	return a.ContentType
}

// observeUpload records a file artifact's upload of size bytes (as sent):
// a debug line, and in the metrics when it succeeded.
func (s *queueSink) observeUpload(a task.Artifact, size int64, started time.Time, err error) {
	if err == nil {
		s.metrics.ArtifactUploaded(s.storageType, size)
	}
	if s.log == nil {
		return
	}
	args := []any{"name", a.Name, "bytes", size, "encoding", s.StoredEncoding(a), "storageType", s.storageType, "duration", time.Since(started)}
	if err != nil {
		s.log.Debug("artifact upload failed", append(args, "error", err)...)
		return
	}
	s.log.Debug("artifact uploaded", args...)
}

func measure(open func() (io.ReadCloser, error)) (int64, error) {
	r, err := open()
	if err != nil {
		return 0, err
	}
	defer r.Close()
	return io.Copy(io.Discard, r)
}
