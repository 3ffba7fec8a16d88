package worker

import (
	"context"
	"errors"
	"time"

	"github.com/workergen/workergen/task"
	"github.com/workergen/workergen/taskcluster"
)

// Early artifact creation (task.ArtifactPreparer): the task log's
// createArtifact is sent in the background when the run starts, so that
// between the task's end and reportCompleted only the upload remains.

// preparedMaxAge is how old an early s3 answer may be when the content is
// uploaded with it. Its putUrl lives 45 minutes at the Queue (upstream
// services/queue/src/artifacts.js); an older answer is replaced by a fresh
// createArtifact with the identical request, which the Queue accepts again
// (post-artifact-request.json: repeating the same properties is
// idempotent) and answers with a new putUrl.
const preparedMaxAge = 5 * time.Minute

// objectPrepareHorizon: an object artifact is prepared only when the task's
// deadline is less than this away. The Queue's answer carries upload
// credentials valid for min(24 hours, the artifact's expiry), and unlike
// s3 an object artifact cannot be created afresh for new ones (the Queue
// picks a new uploadId, which conflicts with the first); a run never
// outlives its task's deadline, so within this horizon the credentials
// outlast the run.
const objectPrepareHorizon = 23 * time.Hour

// leftoverTimeout bounds the upload of prepared artifacts a run did not
// publish (publishLeftovers).
const leftoverTimeout = time.Minute

// errNotPrepared means the artifact has no usable early answer: the
// caller creates it afresh.
var errNotPrepared = errors.New("artifact not prepared")

// preparedArtifact is one early createArtifact.
type preparedArtifact struct {
	a    task.Artifact                    // as prepared (Open for publishLeftovers)
	req  *taskcluster.PostArtifactRequest // as sent
	sent time.Time                        // when the request was sent (local clock)
	done chan struct{}                    // closed when resp, err are set
	resp *taskcluster.PostArtifactResponse
	err  error
	// taken: Publish (or publishLeftovers) took the answer; guarded by
	// queueSink.mu.
	taken bool
}

// PrepareArtifact implements task.ArtifactPreparer: it sends a's
// createArtifact (without contentLength) in the background. Object
// artifacts are prepared only for tasks whose deadline is within
// objectPrepareHorizon.
func (s *queueSink) PrepareArtifact(a task.Artifact) {
	if a.Kind != task.ArtifactFile {
		return
	}
	if s.storageType == taskcluster.StorageObject && (s.deadline.IsZero() || time.Until(s.deadline) > objectPrepareHorizon) {
		return
	}
	p := s.addPrepared(a)
	if p == nil {
		return
	}
	ctx := s.bg
	if ctx == nil {
		ctx = context.Background()
	}
	go s.create(ctx, p)
}

// create sends p's createArtifact.
func (s *queueSink) create(ctx context.Context, p *preparedArtifact) {
	defer close(p.done)
	p.resp, p.err = s.queue.CreateArtifact(ctx, s.taskID, s.runID, p.a.Name, p.req)
	if p.err == nil && s.created != nil {
		s.created(p.a.Name, p.resp)
	}
	if s.log == nil {
		return
	}
	if p.err != nil {
		s.log.Debug("early artifact creation failed; it is created again when published", "name", p.a.Name, "error", p.err)
		return
	}
	s.log.Debug("artifact created ahead of its content", "name", p.a.Name, "storageType", s.storageType, "duration", time.Since(p.sent))
}

// lengthless reports whether artifact name is created without
// contentLength.
func (s *queueSink) lengthless(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.noLength[name]
}

// uploadPrepared uploads file artifact a (its upload up) with the early
// createArtifact answer, waiting for it if it is still on its way. It
// returns errNotPrepared when a was not prepared or the answer is not
// usable: the early request failed, differs from up's (content type,
// expiry), is older than preparedMaxAge (s3), or the store refused the
// upload with it (4xx: an expired putUrl or credentials). The caller then
// creates the artifact afresh.
func (s *queueSink) uploadPrepared(ctx context.Context, a task.Artifact, up *taskcluster.ArtifactUpload) error {
	s.mu.Lock()
	p := s.prepared[a.Name]
	if p == nil || p.taken {
		s.mu.Unlock()
		return errNotPrepared
	}
	p.taken = true
	s.mu.Unlock()
	select {
	case <-p.done:
	case <-ctx.Done():
		s.untake(p)
		return ctx.Err()
	}
	req, err := taskcluster.FileArtifactRequest(up)
	why := ""
	switch {
	case err != nil:
		return err
	case p.err != nil:
		why = "the early createArtifact failed"
	case !sameFileRequest(p.req, req):
		why = "the request differs from the early one"
	case s.storageType == taskcluster.StorageS3 && time.Since(p.sent) > preparedMaxAge:
		why = "the early answer is too old"
	}
	if why == "" {
		err = s.queue.UploadCreatedArtifact(ctx, s.taskID, s.runID, a.Name, p.resp, up)
		code := taskcluster.StatusCode(err)
		if err != nil && ctx.Err() != nil {
			s.untake(p)
		}
		if err == nil || ctx.Err() != nil || code < 400 || code > 499 {
			return err
		}
		why = "the upload with the early answer was refused: " + err.Error()
	}
	if s.log != nil {
		s.log.Debug("creating the artifact afresh", "name", a.Name, "why", why)
	}
	return errNotPrepared
}

// untake gives p back to publishLeftovers: its upload was cut (ctx
// cancelled, e.g. by the shutdown deadline), and the artifact created
// early would otherwise stay without content.
func (s *queueSink) untake(p *preparedArtifact) {
	s.mu.Lock()
	p.taken = false
	s.mu.Unlock()
}

// sameFileRequest reports whether two file artifact requests are the same
// for the Queue.
func sameFileRequest(a, b *taskcluster.PostArtifactRequest) bool {
	sameLength := (a.ContentLength == nil) == (b.ContentLength == nil) &&
		(a.ContentLength == nil || *a.ContentLength == *b.ContentLength)
	return a.StorageType == b.StorageType && a.ContentType == b.ContentType &&
		a.Expires.Equal(b.Expires) && sameLength
}

// publishLeftovers publishes, with the content the preparation gave, every
// prepared artifact the run did not publish whose early creation
// succeeded, so that no artifact stays without content (a run the Queue
// cancelled ends without Finished). It waits for early creations still on
// their way. Failures are logged; it takes at most leftoverTimeout.
func (s *queueSink) publishLeftovers(ctx context.Context) {
	s.mu.Lock()
	var left []*preparedArtifact
	for _, p := range s.prepared {
		if !p.taken {
			left = append(left, p)
		}
	}
	s.mu.Unlock()
	if len(left) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, leftoverTimeout)
	defer cancel()
	for _, p := range left {
		select {
		case <-p.done:
		case <-ctx.Done():
			return
		}
		// An early creation the cut stopped mid-call may have created
		// the artifact: it is created afresh (s3 accepts the same
		// request again).
		if p.a.Open == nil || p.err != nil && !errors.Is(p.err, context.Canceled) {
			continue
		}
		a := p.a
		a.Size = -1
		err := s.Publish(ctx, a)
		if s.log == nil {
			continue
		}
		if err != nil {
			s.log.Warn("the run ended without publishing an artifact created for it, and uploading its content failed", "name", a.Name, "error", err)
			continue
		}
		s.log.Info("the run ended without publishing an artifact created for it; uploaded its content", "name", a.Name)
	}
}

// adopt makes resp, an answer to createArtifact for file artifact a made
// earlier (by the run of a dead worker process), the answer Publish of a
// uses, as if a had been prepared now.
func (s *queueSink) adopt(a task.Artifact, resp *taskcluster.PostArtifactResponse) {
	if p := s.addPrepared(a); p != nil {
		p.resp = resp
		close(p.done)
	}
}

// addPrepared records file artifact a as prepared now, its createArtifact
// request without contentLength, and returns the record (its done channel
// open), or nil when a was prepared already or its request cannot be made.
func (s *queueSink) addPrepared(a task.Artifact) *preparedArtifact {
	req, err := taskcluster.FileArtifactRequest(&taskcluster.ArtifactUpload{
		StorageType: s.storageType, ContentType: fileContentType(a), Expires: a.Expires, OmitContentLength: true,
	})
	if err != nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.prepared[a.Name] != nil {
		return nil
	}
	if s.prepared == nil {
		s.prepared = map[string]*preparedArtifact{}
	}
	if s.noLength == nil {
		s.noLength = map[string]bool{}
	}
	p := &preparedArtifact{a: a, req: req, sent: time.Now(), done: make(chan struct{})}
	s.prepared[a.Name], s.noLength[a.Name] = p, true
	return p
}
