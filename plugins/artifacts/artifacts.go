// Package artifacts is the plugin that publishes the files and directories a
// task lists in `payload.artifacts` (upstream:
// schemas/generic-worker/insecure_posix.json and multiuser_windows.json,
// property `artifacts`).
//
// # Before the task runs
//
// NewTaskPlugin checks every entry and turns each problem into one reason of
// a malformed-payload error, so nothing runs for a payload whose artifacts
// cannot be published: `type` file|directory, non-empty `path`, a `name`
// (default: the path, backslashes turned into slashes on Windows as upstream's
// canonicalPath does) the Queue accepts (see task.ValidateArtifactName), `expires` (default
// task.expires) within [task.deadline, task.expires], `contentEncoding`
// identity|gzip, and no two file artifacts with the same name.
//
// # After the task ended (Stopped)
//
// Each entry is read through the engine's ResultSet (ExtractFile,
// ExtractFolder), which applies the path rules: relative paths are relative
// to the task directory, and symlinks or paths resolving outside it are
// refused (engines.ErrOutsideTaskDir) unless the engine allows absolute
// paths. Files are published to tc.Artifacts with at most
// WorkerConfig.UploadConcurrency uploads at a time (default 4), a directory's
// files as "<name>/<path relative to the directory>".
//
//   - contentType: the payload's, else guessed from the extension (".log" is
//     text/plain, then mime.TypeByExtension), else sniffed from the first 512
//     bytes (net/http.DetectContentType).
//   - contentEncoding: the payload's, else identity for content that is
//     compressed already (upstream's extension list, plus audio/video and
//     compressed MIME types, or first 64 KiB that deflate by less than
//     10 %: taskcluster.Compressible), else gzip. The sink applies the
//     encoding.
//   - A missing file or directory is an `error` artifact with reason
//     file-missing-on-worker and fails the run; when `optional`, the error
//     artifact is still published and the run does not fail (as
//     generic-worker v106), also for files that vanish while collected. The wrong kind (a directory for a file artifact
//     or the reverse) or a path refused by the engine is an error artifact
//     with reason invalid-resource-on-worker, and an unreadable file one with
//     file-not-readable-on-worker; both fail the run.
//   - A file that vanishes while a directory is walked becomes an error
//     artifact (file-missing-on-worker) and fails the run (unless
//     optional) while the other files upload.
//   - Every name is claimed once, in payload and walk order: the same
//     sandbox file reached through two entries (a file inside a listed
//     directory) is published once; a name published from two different
//     files, or taken by another plugin (the task log), ends the run
//     malformed-payload naming both sources, as generic-worker treats the
//     Queue's 409 for an artifact uploaded twice, while the other
//     artifacts are published.
//   - The task log line names the encoding the sink stored
//     (task.StoredEncoding: object artifacts are unencoded).
//   - A Publish error that is a *task.ExceptionError (resource-unavailable)
//     stops the other uploads and ends the run with it; any other Publish
//     error is internal-error.
//
// One task log line is written per artifact (name, size, content type,
// encoding, source path), in the order of the payload and of each directory
// walk (a line waits for the uploads listed before it). Artifacts are collected after a maxRunTime kill
// too: Stopped receives the killed task's result.
//
// # docker-worker payloads
//
// When the profile's dialect is docker-worker (Options.Dialect; the
// linux-docker and linux-podman profiles; the JSON shape alone cannot tell
// the dialects apart for an absent or empty field)
// `payload.artifacts` is docker-worker's map
// (schemas/docker-worker/v1/payload.json): artifact name -> {type
// file|directory|volume, path in the container, expires}, published in
// name order with the rules above, except (as docker-worker's
// features/artifacts.js does):
//
//   - a missing path (file-missing-on-worker) or the wrong kind
//     (invalid-resource-on-worker) is an error artifact with a task log
//     line, and does not fail the run ("too many tasks rely on" it,
//     upstream says); other problems (unreadable file, upload) fail it as
//     above;
//   - `volume` (d2g's type: a host directory mounted into the container) is
//     published like a directory, copied out after the task; the worker
//     does not create the directory before the task starts, and says so
//     in the task log;
//   - `features.artifacts: false` publishes none of them (a log line says
//     so); docker-worker's default is true.
//
// Engines must keep a engines.File passed to ExtractFolder's callback usable
// until ResultSet.Dispose: uploads run after the callback returned.
package artifacts

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/plugins"
	"github.com/workergen/workergen/task"
	"github.com/workergen/workergen/taskcluster"
)

// ErrorFileNotReadableOnWorker is the Queue's error artifact reason for a
// file the worker could not read (post-artifact-request.json).
const ErrorFileNotReadableOnWorker = "file-not-readable-on-worker"

// DefaultUploadConcurrency is used when WorkerConfig.UploadConcurrency is 0.
const DefaultUploadConcurrency = 4

// maxErrorMessage is the Queue's limit on an error artifact's message.
const maxErrorMessage = 4096

// Config is the plugin's worker config section (`plugins.artifacts`); it
// has no fields.
type Config struct{}

type plugin struct {
	concurrency int
	dialect     task.Dialect
}

var _ plugins.Plugin = (*plugin)(nil)

// New returns the artifacts plugin for opts.Dialect: docker-worker's
// `artifacts` map and `features.artifacts`, or else generic-worker's
// `artifacts` array. opts.Config is empty, null or a Config;
// opts.Worker.UploadConcurrency must not be negative.
func New(opts plugins.Options) (plugins.Plugin, error) {
	var cfg Config
	if err := plugins.DecodeConfig(opts.Config, &cfg); err != nil {
		return nil, fmt.Errorf("plugins.artifacts: %w", err)
	}
	c := opts.Worker.UploadConcurrency
	switch {
	case c < 0:
		return nil, fmt.Errorf("plugins.artifacts: uploadConcurrency is %d, want >= 0", c)
	case c == 0:
		c = DefaultUploadConcurrency
	}
	return &plugin{concurrency: c, dialect: opts.Dialect}, nil
}

// Close does nothing.
func (*plugin) Close() error { return nil }

// NewTaskPlugin decodes and checks `payload.artifacts` (and, for
// docker-worker payloads, `features.artifacts`).
func (p *plugin) NewTaskPlugin(_ context.Context, tc *task.Context) (plugins.TaskPlugin, error) {
	var specs []spec
	var err error
	if p.dialect.IsDockerWorker() {
		var enabled bool
		specs, enabled, err = decodeDockerWorkerArtifacts(tc.Definition)
		if err != nil {
			return nil, err
		}
		if !enabled {
			if len(specs) > 0 {
				tc.Logf("payload.features.artifacts is false: the %d artifacts of payload.artifacts are not published", len(specs))
			}
			specs = nil
		}
		for _, s := range specs {
			if s.volume {
				tc.Logf("%s: type \"volume\" is published like a directory, copied out of the container after the task; unlike d2g, the worker does not create %q before the task starts", s.field, s.path)
			}
		}
	} else if specs, err = decodeArtifacts(tc.Definition); err != nil {
		return nil, err
	}
	var clashes []string
	for _, s := range specs {
		if s.typ == TypeFile {
			if err := tc.ReserveArtifactName(s.name, s.field+".name"); err != nil {
				clashes = append(clashes, err.Error())
			}
		}
	}
	if len(clashes) > 0 {
		return nil, task.MalformedPayload(clashes...)
	}
	tp := &taskPlugin{tc: tc, specs: specs, concurrency: p.concurrency, files: map[string]spec{}}
	for _, s := range specs {
		if s.typ == TypeFile {
			tp.files[s.name] = s
		}
	}
	tp.log.write = func(line string) { tc.Logf("%s", line) }
	return tp, nil
}

type taskPlugin struct {
	plugins.Base
	tc          *task.Context
	specs       []spec
	concurrency int

	failed atomic.Bool // a required artifact could not be published

	// names maps each artifact name published in Stopped to where it came
	// from; clashes collects the names two sources claimed.
	namesMu sync.Mutex
	names   map[string]source
	clashes []string
	files   map[string]spec // the file artifact entries by name

	// log holds the task log lines of the Stopped stage, written in the
	// order the artifacts are listed and walked.
	log orderedLog
}

// Stopped publishes every artifact of the payload.
func (p *taskPlugin) Stopped(ctx context.Context, r engines.ResultSet) (bool, error) {
	if len(p.specs) == 0 {
		return true, nil
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(p.concurrency)
	defer p.log.flush()
	for _, s := range p.specs {
		if gctx.Err() != nil {
			break
		}
		switch s.typ {
		case TypeFile:
			seq := p.log.reserve()
			if p.claimed(seq, s, s.name, s.path) {
				p.log.done(seq)
				continue
			}
			f, err := r.ExtractFile(gctx, s.path)
			if err != nil {
				if err := p.extractFailed(gctx, g, seq, s, err); err != nil {
					p.log.done(seq)
					g.Go(func() error { return err })
				}
				continue
			}
			g.Go(func() error {
				defer p.log.done(seq)
				return p.publishFile(gctx, seq, s, s.name, s.path, f)
			})
		case TypeDirectory:
			base := strings.TrimRight(s.name, "/")
			files := 0
			err := r.ExtractFolder(gctx, s.path, func(rel string, f engines.File) error {
				files++
				seq := p.log.reserve()
				name := path.Join(base, rel)
				if err := task.ValidateArtifactName(name); err != nil {
					p.failed.Store(true)
					p.tc.Explain(fmt.Sprintf("artifact %q (from %s %q): not published: %v", name, s.field, s.path, err))
					p.log.note(seq, "artifact %q (from %s %q): not published: %v", name, s.field, s.path, err)
					p.log.done(seq)
					return nil
				}
				if p.claimed(seq, s, name, path.Join(s.path, rel)) {
					p.log.done(seq)
					return nil
				}
				g.Go(func() error {
					defer p.log.done(seq)
					return p.publishFile(gctx, seq, s, name, path.Join(s.path, rel), f)
				})
				return gctx.Err()
			})
			seq := p.log.reserve()
			switch {
			case err == nil:
				if files == 0 {
					p.log.note(seq, "directory artifact %q (%s): directory %q holds no files", s.name, s.field, s.path)
				}
				p.log.done(seq)
			case gctx.Err() != nil:
				p.log.done(seq)
			default:
				if err := p.extractFailed(gctx, g, seq, s, err); err != nil {
					p.log.done(seq)
					g.Go(func() error { return err })
				}
			}
		}
	}
	if err := g.Wait(); err != nil {
		return false, err
	}
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("publishing artifacts: %w", err)
	}
	if len(p.clashes) > 0 {
		return false, task.MalformedPayload(p.clashes...)
	}
	return !p.failed.Load(), nil
}

// source is where a published artifact came from: the payload entry and
// the path in the sandbox.
type source struct{ owner, path string }

// claim reserves artifact name for the entry s publishing sandbox path
// src. A name already published from the same path (a file listed on its
// own and inside a listed directory) is published once: skip is true. A
// name another path (or another plugin) already took is recorded as a
// clash naming both sources, and skip is true: as generic-worker v106
// (artifacts.go classifyCreateArtifactError: the Queue's 409 for an
// artifact "already uploaded to this task with different content" is
// malformed-payload) the run then ends malformed-payload, in run and work
// mode alike, and neither source is silently lost.
func (p *taskPlugin) claim(s spec, name, src string) (skip bool, clash string) {
	src = path.Clean(src)
	p.namesMu.Lock()
	defer p.namesMu.Unlock()
	if prev, ok := p.names[name]; ok {
		if prev.path == src {
			return true, ""
		}
		c := fmt.Sprintf("artifact %q is published twice: from %s %q and from %s %q", name, prev.owner, prev.path, s.field, src)
		p.clashes = append(p.clashes, c)
		return true, c
	}
	if f, ok := p.files[name]; ok && f.field != s.field {
		if path.Clean(f.path) == src {
			return true, "" // the file artifact entry publishes it
		}
		c := fmt.Sprintf("artifact %q is published twice: from %s %q and from %s %q", name, s.field, src, f.field, path.Clean(f.path))
		p.clashes = append(p.clashes, c)
		return true, c
	}
	if err := p.tc.ReserveArtifactName(name, p.owner(s)); err != nil {
		c := fmt.Sprintf("artifact %q (from %s %q): %v", name, s.field, src, err)
		p.clashes = append(p.clashes, c)
		return true, c
	}
	if p.names == nil {
		p.names = map[string]source{}
	}
	p.names[name] = source{owner: s.field, path: src}
	return false, ""
}

// claimed claims name for s (see claim) in payload and walk order, before
// anything is read, and reports whether the artifact is not to be
// published (a clash or the same file again), with a task log line.
func (p *taskPlugin) claimed(seq int, s spec, name, src string) bool {
	skip, clash := p.claim(s, name, src)
	switch {
	case clash != "":
		p.log.note(seq, "%s", clash)
	case skip:
		p.log.note(seq, "artifact %q (%s %q): the same file is published by another entry", name, s.field, src)
	}
	return skip
}

// owner is the reservation owner of s's names (the one NewTaskPlugin used
// for file artifacts).
func (p *taskPlugin) owner(s spec) string {
	if s.typ == TypeFile {
		return s.field + ".name"
	}
	return s.field
}

// extractFailed handles an ExtractFile/ExtractFolder error for s: an error
// artifact (or nothing, for a missing optional one), or an error to return.
// When it returns nil it has marked log slot seq done (or will); when it
// returns an error, the caller must.
func (p *taskPlugin) extractFailed(ctx context.Context, g *errgroup.Group, seq int, s spec, err error) error {
	kind := s.typ
	var reason string
	lenient := false // the error artifact does not fail the run
	switch {
	case errors.Is(err, engines.ErrNotFound) || errors.Is(err, fs.ErrNotExist):
		// An optional artifact still gets its error artifact, without
		// failing the run, as generic-worker v106 does
		// (artifact_feature.go: error artifacts of optional artifacts are
		// uploaded, "we don't care about optional artifacts failing").
		reason = task.ErrorFileMissingOnWorker
		lenient = s.lenient || s.optional
	case errors.Is(err, engines.ErrNotAFile), errors.Is(err, engines.ErrNotAFolder), errors.Is(err, engines.ErrOutsideTaskDir):
		reason = task.ErrorInvalidResourceOnWorker
		lenient = s.lenient
	case errors.Is(err, fs.ErrPermission):
		reason = ErrorFileNotReadableOnWorker
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	default:
		return fmt.Errorf("reading %s artifact %q from %q: %w", kind, s.name, s.path, err)
	}
	if s.typ != TypeFile && p.claimed(seq, s, s.name, s.path) {
		p.log.done(seq)
		return nil
	}
	msg := fmt.Sprintf("%s artifact %q (%s): %q: %v", kind, s.name, s.field, s.path, err)
	note := ""
	switch {
	case s.optional:
		note = " (optional: this does not fail the task)"
	case lenient:
		note = " (as in docker-worker, this does not fail the task)"
	default:
		p.failed.Store(true)
		note = p.explainRequired(s, s.name, s.path, reason)
	}
	g.Go(func() error {
		defer p.log.done(seq)
		return p.publishError(ctx, seq, s, s.name, s.path, reason, msg, note)
	})
	return nil
}

// explainRequired records why the required artifact name of entry s, from
// sandbox path src, fails the run, as the run's reason (task.Context.Explain:
// `run` prints it, manifest.json and the worker log carry it), and returns
// the note ending its task log line: for a missing path, the hint to mark
// the entry optional.
func (p *taskPlugin) explainRequired(s spec, name, src, reason string) string {
	var why, hint string
	switch reason {
	case task.ErrorFileMissingOnWorker:
		why = "was not found"
		hint = "; mark it `optional: true` in the payload if it may be absent"
	case task.ErrorInvalidResourceOnWorker:
		why = "cannot be published as a " + s.typ + " (the wrong kind, or a path the worker refuses)"
	default:
		why = "could not be read"
	}
	p.tc.Explain(fmt.Sprintf("required artifact %q (%s): %q %s%s", name, s.field, src, why, hint))
	return " (required: this fails the task" + hint + ")"
}

// publishError publishes an error artifact for sandbox path src; note ends
// the task log line.
func (p *taskPlugin) publishError(ctx context.Context, seq int, s spec, name, src, reason, msg, note string) error {
	if len(msg) > maxErrorMessage {
		msg = msg[:maxErrorMessage]
	}
	p.log.note(seq, "artifact %q: error artifact (%s): %s%s", name, reason, msg, note)
	err := p.tc.Artifacts.Publish(ctx, task.Artifact{
		Name:    name,
		Kind:    task.ArtifactError,
		Expires: s.expires,
		Reason:  reason,
		Message: msg,
	})
	return publishErr(name, err)
}

// publishFile publishes the file f, sandbox path src, as artifact name.
func (p *taskPlugin) publishFile(ctx context.Context, seq int, s spec, name, src string, f engines.File) error {
	rc, err := f.Open()
	if err != nil {
		var reason, note string
		switch {
		case errors.Is(err, engines.ErrNotFound) || errors.Is(err, fs.ErrNotExist):
			// Vanished since it was listed: for an optional artifact,
			// like a missing one (generic-worker v106).
			reason = task.ErrorFileMissingOnWorker
			if s.optional {
				note = " (optional: this does not fail the task)"
			}
		case errors.Is(err, fs.ErrPermission):
			reason = ErrorFileNotReadableOnWorker
		default:
			reason = task.ErrorInvalidResourceOnWorker
		}
		if note == "" {
			p.failed.Store(true)
			note = p.explainRequired(s, name, src, reason)
		}
		return p.publishError(ctx, seq, s, name, src, reason, fmt.Sprintf("opening %q for artifact %q (%s): %v", src, name, s.field, err), note)
	}

	first := &openOnce{rc: rc}
	defer first.release()

	contentType := s.contentType
	if contentType == "" {
		contentType = typeByExtension(name)
	}
	if contentType == "" {
		if contentType, err = first.sniff(); err != nil {
			p.failed.Store(true)
			note := p.explainRequired(s, name, src, ErrorFileNotReadableOnWorker)
			return p.publishError(ctx, seq, s, name, src, ErrorFileNotReadableOnWorker, fmt.Sprintf("reading %q for artifact %q (%s): %v", src, name, s.field, err), note)
		}
	}
	encoding := s.contentEncoding
	if encoding == "" {
		if encoding, err = first.encoding(name, contentType, f.Size()); err != nil {
			p.failed.Store(true)
			note := p.explainRequired(s, name, src, ErrorFileNotReadableOnWorker)
			return p.publishError(ctx, seq, s, name, src, ErrorFileNotReadableOnWorker, fmt.Sprintf("reading %q for artifact %q (%s): %v", src, name, s.field, err), note)
		}
	}
	size := f.Size()
	a := task.Artifact{
		Name:            name,
		Kind:            task.ArtifactFile,
		Expires:         s.expires,
		ContentType:     contentType,
		ContentEncoding: encoding,
		Size:            size,
		Path:            f.HostPath(),
		Open: func() (io.ReadCloser, error) {
			if r := first.take(); r != nil {
				return r, nil
			}
			return f.Open()
		},
	}
	if err = p.tc.Artifacts.Publish(ctx, a); err != nil {
		return publishErr(name, err)
	}
	// The encoding the sink sent (object artifacts are stored unencoded).
	p.log.note(seq, "artifact %q: %d bytes, %s, %s encoding (%s %q)", name, size, contentType, task.StoredEncoding(p.tc.Artifacts, a), s.field, src)
	return nil
}

// publishErr turns a Publish error into the Stopped error: exceptions pass
// unchanged so they end the run with their reason.
func publishErr(name string, err error) error {
	if err == nil {
		return nil
	}
	var ee *task.ExceptionError
	if errors.As(err, &ee) {
		return ee
	}
	return fmt.Errorf("publishing artifact %q: %w", name, err)
}

// openOnce hands out a reader opened before Publish (for sniffing and to
// report a vanished file early) to the sink's first Open call, so a file is
// opened once in the common case.
type openOnce struct {
	mu  sync.Mutex
	rc  io.ReadCloser
	buf []byte // bytes already read from rc by head
	eof bool   // rc has no more bytes after buf
}

// sniff reads up to sniffLen bytes and returns the sniffed content type.
func (o *openOnce) sniff() (string, error) {
	head, err := o.head(sniffLen)
	if err != nil {
		return "", err
	}
	return sniffType(head[:min(len(head), sniffLen)]), nil
}

// encoding returns the content encoding for a file artifact whose payload
// entry set none: chooseEncoding's answer from the name and content type,
// except that gzip becomes identity when the first
// taskcluster.CompressSample bytes do not compress (random or compressed
// data of a type that does not say so). size is the file's size in bytes
// as the engine reported it (it bounds the read buffer; -1 if unknown).
func (o *openOnce) encoding(name, contentType string, size int64) (string, error) {
	enc := chooseEncoding(name, contentType)
	if enc != task.EncodingGzip {
		return enc, nil
	}
	n := taskcluster.CompressSample
	if size >= 0 && size < int64(n) {
		n = max(int(size)+1, sniffLen) // +1 tells a file that grew
	}
	head, err := o.head(n)
	if err != nil {
		return "", err
	}
	if !taskcluster.Compressible(head) {
		return task.EncodingIdentity, nil
	}
	return enc, nil
}

// head returns the first n bytes of the content (fewer at its end),
// reading only what earlier calls did not.
func (o *openOnce) head(n int) ([]byte, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.buf) >= n || o.eof || o.rc == nil {
		return o.buf, nil
	}
	buf := make([]byte, n)
	copy(buf, o.buf)
	m, err := io.ReadFull(o.rc, buf[len(o.buf):])
	o.buf = buf[:len(o.buf)+m]
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		o.eof = true
		err = nil
	}
	return o.buf, err
}

// take returns the pre-opened reader, or nil once it was taken.
func (o *openOnce) take() io.ReadCloser {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.rc == nil {
		return nil
	}
	r := o.rc
	o.rc = nil
	if len(o.buf) == 0 {
		return r
	}
	return struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(o.buf), r), r}
}

// release closes the pre-opened reader if the sink never took it.
func (o *openOnce) release() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.rc != nil {
		_ = o.rc.Close()
		o.rc = nil
	}
}
