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
// canonicalPath does) the Queue accepts (see ValidateName), `expires` (default
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
//     file-missing-on-worker and fails the run, unless `optional` (then
//     nothing is published). The wrong kind (a directory for a file artifact
//     or the reverse) or a path refused by the engine is an error artifact
//     with reason invalid-resource-on-worker, and an unreadable file one with
//     file-not-readable-on-worker; both fail the run.
//   - A file that vanishes while a directory is walked becomes an error
//     artifact (file-missing-on-worker) and fails the run while the other
//     files upload.
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
	tp := &taskPlugin{tc: tc, specs: specs, concurrency: p.concurrency}
	tp.log.write = func(line string) { tc.Logf("%s", line) }
	return tp, nil
}

type taskPlugin struct {
	plugins.Base
	tc          *task.Context
	specs       []spec
	concurrency int

	failed atomic.Bool // a required artifact could not be published

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
				return p.publishFile(gctx, seq, s, s.name, f)
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
					p.log.note(seq, "artifact %q (from %s %q): not published: %v", name, s.field, s.path, err)
					p.log.done(seq)
					return nil
				}
				g.Go(func() error {
					defer p.log.done(seq)
					return p.publishFile(gctx, seq, s, name, f)
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
	return !p.failed.Load(), nil
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
		if s.optional {
			p.log.note(seq, "optional %s artifact %q: %q not found; nothing published", kind, s.name, s.path)
			p.log.done(seq)
			return nil
		}
		reason = task.ErrorFileMissingOnWorker
		lenient = s.lenient
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
	msg := fmt.Sprintf("%s artifact %q (%s): %q: %v", kind, s.name, s.field, s.path, err)
	note := ""
	if lenient {
		note = " (as in docker-worker, this does not fail the task)"
	} else {
		p.failed.Store(true)
	}
	g.Go(func() error {
		defer p.log.done(seq)
		return p.publishError(ctx, seq, s, s.name, reason, msg, note)
	})
	return nil
}

// publishError publishes an error artifact; note ends the task log line.
func (p *taskPlugin) publishError(ctx context.Context, seq int, s spec, name, reason, msg, note string) error {
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

// publishFile publishes the file f as artifact name.
func (p *taskPlugin) publishFile(ctx context.Context, seq int, s spec, name string, f engines.File) error {
	rc, err := f.Open()
	if err != nil {
		var reason string
		switch {
		case errors.Is(err, engines.ErrNotFound) || errors.Is(err, fs.ErrNotExist):
			reason = task.ErrorFileMissingOnWorker
			if s.optional && s.typ == TypeFile {
				p.log.note(seq, "optional file artifact %q: %q vanished; nothing published", name, s.path)
				return nil
			}
		case errors.Is(err, fs.ErrPermission):
			reason = ErrorFileNotReadableOnWorker
		default:
			reason = task.ErrorInvalidResourceOnWorker
		}
		p.failed.Store(true)
		return p.publishError(ctx, seq, s, name, reason, fmt.Sprintf("opening %q for artifact %q (%s): %v", s.path, name, s.field, err), "")
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
			return p.publishError(ctx, seq, s, name, ErrorFileNotReadableOnWorker, fmt.Sprintf("reading %q for artifact %q (%s): %v", s.path, name, s.field, err), "")
		}
	}
	encoding := s.contentEncoding
	if encoding == "" {
		if encoding, err = first.encoding(name, contentType, f.Size()); err != nil {
			p.failed.Store(true)
			return p.publishError(ctx, seq, s, name, ErrorFileNotReadableOnWorker, fmt.Sprintf("reading %q for artifact %q (%s): %v", s.path, name, s.field, err), "")
		}
	}
	size := f.Size()
	err = p.tc.Artifacts.Publish(ctx, task.Artifact{
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
	})
	if err != nil {
		return publishErr(name, err)
	}
	p.log.note(seq, "artifact %q: %d bytes, %s, %s encoding (%s %q)", name, size, contentType, encoding, s.field, s.path)
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
