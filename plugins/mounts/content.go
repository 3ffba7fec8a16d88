package mounts

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/workergen/workergen/task"
	"github.com/workergen/workergen/taskcluster/tcwire"
)

// errPermanent marks a download failure that is the task's fault (a 4xx
// answer, an unusable URL, content too large): malformed-payload rather
// than resource-unavailable.
var errPermanent = errors.New("content cannot be fetched")

// errNoQueue is an artifact or index mount on a worker without a rootUrl
// (run mode): the worker lacks the resource, the task is fine, so the run
// is resource-unavailable, as the container engine reports an indexed or
// task image there and as generic-worker v106 reports a Queue it cannot
// use (only the Queue's 4xx refusals are malformed-payload).
var errNoQueue = errors.New("this worker has no rootUrl (run mode without one): it cannot reach a Queue or Index")

// fetched is mount content ready to read.
type fetched struct {
	src    source
	close  func()
	size   int64
	sha256 string
	// cached is true when the content came from downloadsDir without a
	// download.
	cached bool
}

// fetch returns the content c of mount field (e.g. "payload.mounts[0]"),
// from downloadsDir when an earlier run downloaded it (its SHA-256 checked
// again), else downloading it. Errors are *task.ExceptionError:
// malformed-payload for content that is the task's fault (4xx, SHA-256
// mismatch), resource-unavailable for network trouble and 5xx.
func (p *plugin) fetch(ctx context.Context, tc *task.Context, c *Content, field string) (*fetched, error) {
	if data, ok, err := c.inline(); ok || err != nil {
		if err != nil {
			return nil, task.MalformedPayloadf("%s.content.base64: %v", field, err)
		}
		sum := sha256.Sum256(data)
		return &fetched{src: bytes.NewReader(data), close: func() {}, size: int64(len(data)), sha256: hex.EncodeToString(sum[:])}, nil
	}
	var key string
	taskID := c.TaskID
	switch {
	case c.URL != "":
		u, err := url.Parse(c.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, task.MalformedPayloadf("%s.content.url: %q is not an http(s) URL", field, c.URL)
		}
		key = "url:" + c.URL
	case c.Namespace != "":
		id, err := p.findTask(ctx, tc, c.Namespace)
		if err != nil {
			return nil, p.contentError(tc, field+".content.namespace", c, err)
		}
		taskID = id
		key = "artifact:" + id + ":" + c.Artifact
	case c.TaskID != "":
		key = "artifact:" + c.TaskID + ":" + c.Artifact
	default:
		return nil, task.MalformedPayloadf("%s.content: no content given", field)
	}

	unlock, err := p.lockKey(ctx, key)
	if err != nil {
		return nil, err
	}
	defer unlock()
	sum := sha256.Sum256([]byte(key))
	file := filepath.Join(p.downloadsDir, hex.EncodeToString(sum[:]))
	p.gcMu.RLock()
	got, err := fileSHA256(file)
	if err == nil && (c.SHA256 == "" || got == c.SHA256) {
		f, err := openFetched(file, got, true)
		p.gcMu.RUnlock()
		return f, err
	}
	p.gcMu.RUnlock()
	if err == nil {
		tc.Logf("[mounts] %s: earlier download of %s has SHA256 %s, the task requires %s: downloading again", field, c, got, c.SHA256)
		if err := os.Remove(file); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, task.InternalError(fmt.Errorf("removing stale download: %w", err))
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, task.InternalError(fmt.Errorf("reading earlier download: %w", err))
	}

	if err := os.MkdirAll(p.downloadsDir, 0o700); err != nil {
		return nil, task.InternalError(fmt.Errorf("creating downloadsDir: %w", err))
	}
	tmp, err := os.CreateTemp(p.downloadsDir, ".download-*")
	if err != nil {
		return nil, task.InternalError(fmt.Errorf("creating download file: %w", err))
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	var n int64
	get := func(ctx context.Context) (io.ReadCloser, error) {
		if c.URL != "" {
			return p.httpGet(ctx, c.URL)
		}
		return p.getArtifact(ctx, tc, taskID, c.Artifact)
	}
	n, err = p.download(ctx, get, tmp, h)
	if cerr := tmp.Close(); err == nil && cerr != nil {
		err = task.InternalError(fmt.Errorf("writing download: %w", cerr))
	}
	if err != nil {
		return nil, p.contentError(tc, field+".content", c, err)
	}
	got = hex.EncodeToString(h.Sum(nil))
	if c.SHA256 != "" && got != c.SHA256 {
		return nil, task.MalformedPayloadf("%s.content.sha256: %s has SHA256 %s but the task requires %s", field, c, got, c.SHA256)
	}
	p.gcMu.RLock()
	defer p.gcMu.RUnlock()
	if err := os.Rename(tmp.Name(), file); err != nil {
		return nil, task.InternalError(fmt.Errorf("keeping download: %w", err))
	}
	f, err := openFetched(file, got, false)
	if err == nil {
		f.size = n
	}
	return f, err
}

// download writes the body get returns to w and h, retrying from the
// start (w truncated) after network errors and 5xx answers until
// retryMaxElapsed; maxDownloadSize bounds the body.
func (p *plugin) download(ctx context.Context, get func(context.Context) (io.ReadCloser, error), w *os.File, h interface {
	io.Writer
	Reset()
}) (int64, error) {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = p.retryInitial
	return backoff.Retry(ctx, func() (int64, error) {
		if _, err := w.Seek(0, io.SeekStart); err != nil {
			return 0, backoff.Permanent(task.InternalError(err))
		}
		if err := w.Truncate(0); err != nil {
			return 0, backoff.Permanent(task.InternalError(err))
		}
		h.Reset()
		body, err := get(ctx)
		if err != nil {
			// A name that does not resolve (NXDOMAIN) will not resolve on
			// the next attempt either: fail now, still as unavailable.
			var dnsErr *net.DNSError
			if errors.Is(err, errPermanent) || errors.Is(err, errNoQueue) || (errors.As(err, &dnsErr) && dnsErr.IsNotFound) {
				return 0, backoff.Permanent(err)
			}
			return 0, err
		}
		defer body.Close()
		var r io.Reader = body
		if p.cfg.MaxDownloadSize > 0 {
			r = io.LimitReader(body, p.cfg.MaxDownloadSize+1)
		}
		n, err := io.Copy(io.MultiWriter(w, h), r)
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				return n, backoff.Permanent(task.InternalError(fmt.Errorf("writing download: %w", err)))
			}
			return n, fmt.Errorf("reading content: %w", err)
		}
		if p.cfg.MaxDownloadSize > 0 && n > p.cfg.MaxDownloadSize {
			return n, backoff.Permanent(fmt.Errorf("%w: larger than the worker's maxDownloadSize of %d bytes", errPermanent, p.cfg.MaxDownloadSize))
		}
		return n, nil
	}, backoff.WithBackOff(b), backoff.WithMaxElapsedTime(p.retryMaxElapsed))
}

// httpGet GETs u; 4xx answers are errPermanent, 5xx retried.
func (p *plugin) httpGet(ctx context.Context, u string) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errPermanent, err)
	}
	resp, err := p.httpClient.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 == 2 {
		return resp.Body, nil
	}
	resp.Body.Close()
	err = fmt.Errorf("GET %s: %s", u, resp.Status)
	if resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests {
		return nil, fmt.Errorf("%w: %v", errPermanent, err)
	}
	return nil, err
}

// getArtifact downloads the latest run's artifact name of taskID (as
// generic-worker does: queue.getLatestArtifact) through the run's Queue,
// which signs with the run's task credentials. Refusals (missing task, run
// or artifact, error artifact, missing queue:get-artifact scope) are
// errPermanent.
func (p *plugin) getArtifact(ctx context.Context, tc *task.Context, taskID, name string) (io.ReadCloser, error) {
	if tc.Queue == nil {
		return nil, fmt.Errorf("fetching artifacts: %w", errNoQueue)
	}
	body, err := tc.Queue.OpenLatestArtifact(ctx, taskID, name)
	if err != nil {
		return nil, classifyTC(err)
	}
	return body, nil
}

// findTask resolves an index namespace to a taskId (index.findTask)
// through the run's Queue.
func (p *plugin) findTask(ctx context.Context, tc *task.Context, namespace string) (string, error) {
	if tc.Queue == nil {
		return "", fmt.Errorf("querying the index: %w", errNoQueue)
	}
	id, err := tc.Queue.FindTask(ctx, namespace)
	if err != nil {
		return "", classifyTC(err)
	}
	return id, nil
}

// classifyTC marks refusals by Taskcluster services (4xx answers, or
// nothing found: a namespace naming no task, a task without runs)
// errPermanent.
func classifyTC(err error) error {
	if code := tcwire.StatusCode(err); (code >= 400 && code < 500) || errors.Is(err, tcwire.ErrNotFound) {
		return fmt.Errorf("%w: %v", errPermanent, err)
	}
	return err
}

// contentError turns a fetch failure into the run's exception, logging a
// line that names the mount.
func (p *plugin) contentError(tc *task.Context, field string, c *Content, err error) error {
	var ee *task.ExceptionError
	if errors.As(err, &ee) {
		return err
	}
	if errors.Is(err, errPermanent) {
		tc.Logf("[mounts] %s: cannot fetch %s: %v", field, c, err)
		return task.MalformedPayloadf("%s: cannot fetch %s: %v", field, c, err)
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	tc.Logf("[mounts] %s: %s is unavailable: %v", field, c, err)
	return task.ResourceUnavailable(fmt.Errorf("%s: fetching %s: %w", field, c, err))
}

func openFetched(file, sum string, cached bool) (*fetched, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, task.InternalError(fmt.Errorf("opening download: %w", err))
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, task.InternalError(err)
	}
	now := time.Now()
	_ = os.Chtimes(file, now, now) // last use, for whoever cleans downloadsDir
	return &fetched{src: f, close: func() { f.Close() }, size: fi.Size(), sha256: sum, cached: cached}, nil
}

func fileSHA256(file string) (string, error) {
	f, err := os.Open(file)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// lockKey serialises fetches of one content key across runs, so two runs
// needing the same content download it once.
// lockKey gives up when ctx ends first.
func (p *plugin) lockKey(ctx context.Context, key string) (func(), error) {
	p.mu.Lock()
	l, ok := p.keyLocks[key]
	if !ok {
		l = make(chan struct{}, 1)
		p.keyLocks[key] = l
	}
	p.mu.Unlock()
	select {
	case l <- struct{}{}:
		return func() { <-l }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
