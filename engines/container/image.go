package container

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/distribution/reference"
	"github.com/klauspost/compress/zstd"
	"github.com/moby/moby/api/pkg/authconfig"
	"github.com/moby/moby/api/types/registry"
	"github.com/moby/moby/client"
	"github.com/pierrec/lz4/v4"

	"github.com/workergen/workergen/internal/diskfree"
	"github.com/workergen/workergen/task"
	"github.com/workergen/workergen/taskcluster/tcwire"
)

// errNoQueue is what indexed-image and task-image payloads meet in a run
// without Queue access (run mode without rootUrl: tc.Queue is nil).
var errNoQueue = errors.New("this run has no Queue access to download task images (no rootUrl)")

// taskImageRepo is the local repository task images are tagged into, so a
// later run finds them without downloading again.
const taskImageRepo = "workergen-task-image"

// images resolves payload images to local image IDs and garbage-collects
// the images it used when disk space runs low.
type images struct {
	cli   *client.Client
	cfg   Config
	queue task.Queue // replaces tc.Queue when set (tests)

	mu       sync.Mutex
	keyLocks map[string]*sync.Mutex // one resolution at a time per image key
	lastUsed map[string]time.Time   // image reference -> last use
	inUse    map[string]int         // image reference -> running sandboxes
	// hashes holds "sha256:<hex>" of the artifact each task image was
	// loaded from, by local tag (taskImageTag).
	hashes map[string]string
}

// imageArtifact names the artifact a task image comes from.
type imageArtifact struct {
	taskID, path string
}

func newImages(cli *client.Client, cfg Config) *images {
	return &images{cli: cli, cfg: cfg, keyLocks: map[string]*sync.Mutex{}, lastUsed: map[string]time.Time{}, inUse: map[string]int{}, hashes: map[string]string{}}
}

func (s *images) lock(key string) func() {
	s.mu.Lock()
	m := s.keyLocks[key]
	if m == nil {
		m = &sync.Mutex{}
		s.keyLocks[key] = m
	}
	s.mu.Unlock()
	m.Lock()
	return m.Unlock
}

// acquire marks the image reference id (a registry reference or a task
// image's local tag) as used by a sandbox until release is called.
func (s *images) acquire(id string) (release func()) {
	s.mu.Lock()
	s.inUse[id]++
	s.lastUsed[id] = time.Now()
	s.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.inUse[id]--; s.inUse[id] <= 0 {
				delete(s.inUse, id)
			}
			s.lastUsed[id] = time.Now()
		})
	}
}

// resolve makes img present locally and returns its image ID, the local
// reference it goes by (the registry reference, or the task image's tag)
// and, for task images, the artifact it was loaded from.
// Errors are *task.ExceptionError: malformed-payload for images that do not
// exist or cannot be loaded, resource-unavailable for transient trouble.
func (s *images) resolve(ctx context.Context, tc *task.Context, img Image) (id, ref string, art *imageArtifact, err error) {
	switch img.Type {
	case ImageRegistry:
		id, err := s.resolveRef(ctx, tc, img.Name)
		return id, img.Name, nil, err
	case ImageTask:
		id, err := s.resolveArtifact(ctx, tc, img, img.TaskID)
		return id, taskImageTag(img.TaskID, img.Path), &imageArtifact{img.TaskID, img.Path}, err
	case ImageIndexed:
		q := s.queueOf(tc)
		if q == nil {
			return "", "", nil, task.ResourceUnavailable(fmt.Errorf("payload.image (%s): %w", img, errNoQueue))
		}
		fctx, cancel := context.WithTimeout(ctx, s.cfg.pullTimeout())
		taskID, err := q.FindTask(fctx, img.Namespace)
		cancel()
		if err != nil {
			if taskAtFault(err) {
				return "", "", nil, task.MalformedPayloadf("payload.image: index namespace %q: %v", img.Namespace, err)
			}
			return "", "", nil, task.ResourceUnavailable(fmt.Errorf("payload.image: looking up index namespace %q: %w", img.Namespace, err))
		}
		tc.Logf("image: index namespace %s points at task %s", img.Namespace, taskID)
		id, err := s.resolveArtifact(ctx, tc, img, taskID)
		return id, taskImageTag(taskID, img.Path), &imageArtifact{taskID, img.Path}, err
	}
	return "", "", nil, task.MalformedPayloadf("payload.image.type: unknown image type %q", img.Type)
}

func (s *images) resolveRef(ctx context.Context, tc *task.Context, ref string) (string, error) {
	defer s.lock("ref:" + ref)()
	if s.cfg.PullPolicy != "always" {
		if id, err := s.inspect(ctx, ref); err == nil {
			tc.Logf("image %s: present (%s)", ref, shortID(id))
			return id, nil
		} else if !cerrdefs.IsNotFound(err) {
			return "", task.ResourceUnavailable(fmt.Errorf("inspecting image %s: %w", ref, err))
		}
	}
	s.collectGarbage(ctx, tc)
	tc.Logf("image %s: pulling (time limit %s)", ref, s.cfg.pullTimeout())
	start := time.Now()
	pctx, cancel := context.WithTimeout(ctx, s.cfg.pullTimeout())
	defer cancel()
	err := s.pull(pctx, ref, func(done, total int) {
		tc.Logf("image %s: still pulling after %s (%d of %d layers done)", ref, time.Since(start).Round(time.Second), done, total)
	})
	if err != nil {
		if pctx.Err() != nil && ctx.Err() == nil {
			err = fmt.Errorf("pull did not finish within %s: %w", s.cfg.pullTimeout(), err)
		}
		tc.Logf("image %s: pull failed: %v", ref, err)
		if isImageMissing(err) {
			return "", task.MalformedPayloadf("payload.image: %q cannot be pulled (not found or access denied): %v", ref, err)
		}
		return "", task.ResourceUnavailable(fmt.Errorf("pulling image %s: %w", ref, err))
	}
	id, err := s.inspect(ctx, ref)
	if err != nil {
		return "", task.ResourceUnavailable(fmt.Errorf("inspecting pulled image %s: %w", ref, err))
	}
	tc.Logf("image %s: pulled in %s (%s)", ref, time.Since(start).Round(time.Millisecond), shortID(id))
	return id, nil
}

// registryAuth returns the encoded credentials configured for ref's
// registry, or "".
func (s *images) registryAuth(ref string) (string, error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return "", err
	}
	domain := reference.Domain(named)
	creds, ok := s.cfg.Registries[domain]
	if !ok {
		return "", nil
	}
	return authconfig.Encode(registry.AuthConfig{Username: creds.Username, Password: creds.Password, ServerAddress: domain})
}

// pullProgressEvery is how often a long pull reports progress in the task
// log.
const pullProgressEvery = 15 * time.Second

// pull pulls ref, returning the first error of the progress stream.
// progress, when not nil, is called at most every pullProgressEvery with
// the number of layers done and seen so far.
func (s *images) pull(ctx context.Context, ref string, progress func(done, total int)) error {
	auth, err := s.registryAuth(ref)
	if err != nil {
		return err
	}
	resp, err := s.cli.ImagePull(ctx, ref, client.ImagePullOptions{RegistryAuth: auth})
	if err != nil {
		return err
	}
	defer resp.Close()
	layers := map[string]string{} // layer ID -> last status
	next := time.Now().Add(pullProgressEvery)
	for msg, err := range resp.JSONMessages(ctx) {
		if err != nil {
			return err
		}
		if msg.Error != nil {
			return errors.New(msg.Error.Message)
		}
		if msg.ID != "" && msg.Status != "" {
			layers[msg.ID] = msg.Status
		}
		if progress != nil && time.Now().After(next) {
			next = time.Now().Add(pullProgressEvery)
			done := 0
			for _, st := range layers {
				if st == "Pull complete" || st == "Already exists" || st == "Download complete" {
					done++
				}
			}
			progress(done, len(layers))
		}
	}
	return ctx.Err()
}

// isImageMissing tells a pull error the task is at fault for (the image
// does not exist or the registry refuses it) from transient trouble.
func isImageMissing(err error) bool {
	if cerrdefs.IsNotFound(err) || cerrdefs.IsUnauthorized(err) || cerrdefs.IsPermissionDenied(err) || cerrdefs.IsInvalidArgument(err) {
		return true
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return false
	}
	msg := strings.ToLower(err.Error())
	for _, s := range []string{"manifest unknown", "name unknown", "not found", "unauthorized", "denied", "authentication required", "invalid reference", "repository does not exist", "no such image"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

func (s *images) inspect(ctx context.Context, ref string) (string, error) {
	res, err := s.cli.ImageInspect(ctx, ref)
	if err != nil {
		return "", err
	}
	return res.ID, nil
}

// queueOf returns the Queue access images are downloaded with: the
// engine's override, else the run's (nil in run mode without rootUrl).
func (s *images) queueOf(tc *task.Context) task.Queue {
	if s.queue != nil {
		return s.queue
	}
	return tc.Queue
}

// taskAtFault reports whether a failed index or artifact look-up is the
// task's doing (malformed-payload) rather than the deployment's (transient,
// resource-unavailable): a namespace, task or artifact that does not exist
// (404), an error artifact (424), or a refusal for lack of the task's scopes
// (403).
func taskAtFault(err error) bool {
	return errors.Is(err, tcwire.ErrNotFound) || errors.Is(err, tcwire.ErrForbidden) ||
		tcwire.StatusCode(err) == http.StatusFailedDependency
}

// taskImageTag is the local tag of a task image: the same artifact of the
// same task is always the same image (artifacts are immutable).
func taskImageTag(taskID, path string) string {
	h := sha256.Sum256([]byte(taskID + "\x00" + path))
	return taskImageRepo + ":" + hex.EncodeToString(h[:16])
}

func (s *images) resolveArtifact(ctx context.Context, tc *task.Context, img Image, taskID string) (string, error) {
	q := s.queueOf(tc)
	if q == nil {
		return "", task.ResourceUnavailable(fmt.Errorf("payload.image (%s): %w", img, errNoQueue))
	}
	tag := taskImageTag(taskID, img.Path)
	defer s.lock("tag:" + tag)()
	if id, err := s.inspect(ctx, tag); err == nil {
		tc.Logf("image: artifact %s of task %s already loaded (%s)", img.Path, taskID, shortID(id))
		return id, nil
	}
	s.collectGarbage(ctx, tc)
	tc.Logf("image: downloading artifact %s of task %s (time limit %s)", img.Path, taskID, s.cfg.pullTimeout())
	start := time.Now()
	lctx, cancel := context.WithTimeout(ctx, s.cfg.pullTimeout())
	defer cancel()
	body, err := q.OpenLatestArtifact(lctx, taskID, img.Path)
	if err != nil {
		if taskAtFault(err) {
			return "", task.MalformedPayloadf("payload.image: artifact %q of task %s: %v", img.Path, taskID, err)
		}
		return "", task.ResourceUnavailable(fmt.Errorf("downloading image artifact %s of task %s: %w", img.Path, taskID, err))
	}
	defer body.Close()
	sum := sha256.New()
	counted := &countingReader{r: io.TeeReader(body, sum)}
	tarball, err := decompress(counted)
	if err != nil {
		return "", task.MalformedPayloadf("payload.image: artifact %q of task %s: %v", img.Path, taskID, err)
	}
	loaded, err := s.load(lctx, tarball)
	if err != nil {
		if counted.err != nil || lctx.Err() != nil {
			return "", task.ResourceUnavailable(fmt.Errorf("downloading image artifact %s of task %s: %w", img.Path, taskID, errors.Join(counted.err, err)))
		}
		return "", task.MalformedPayloadf("payload.image: artifact %q of task %s is not a loadable image: %v", img.Path, taskID, err)
	}
	// The artifact's hash covers all of it, also what the image loader
	// left unread (tar padding).
	if _, err := io.Copy(io.Discard, counted); err != nil {
		return "", task.ResourceUnavailable(fmt.Errorf("downloading image artifact %s of task %s: %w", img.Path, taskID, err))
	}
	s.mu.Lock()
	s.hashes[tag] = "sha256:" + hex.EncodeToString(sum.Sum(nil))
	s.mu.Unlock()
	if _, err := s.cli.ImageTag(ctx, client.ImageTagOptions{Source: loaded, Target: tag}); err != nil {
		return "", task.InternalError(fmt.Errorf("tagging loaded image %s as %s: %w", loaded, tag, err))
	}
	id, err := s.inspect(ctx, tag)
	if err != nil {
		return "", task.InternalError(fmt.Errorf("inspecting loaded image %s: %w", tag, err))
	}
	tc.Logf("image: loaded %d bytes in %s as %s (%s)", counted.n, time.Since(start).Round(time.Millisecond), tag, shortID(id))
	return id, nil
}

// artifactHash returns "sha256:<hex>" of the artifact a task image was
// loaded from. An image the worker loaded before it restarted has no
// recorded hash: the artifact is downloaded again to compute it.
func (s *images) artifactHash(ctx context.Context, tc *task.Context, a imageArtifact) (string, error) {
	tag := taskImageTag(a.taskID, a.path)
	s.mu.Lock()
	h, ok := s.hashes[tag]
	s.mu.Unlock()
	if ok {
		return h, nil
	}
	q := s.queueOf(tc)
	if q == nil {
		return "", fmt.Errorf("hashing image artifact %s of task %s: %w", a.path, a.taskID, errNoQueue)
	}
	body, err := q.OpenLatestArtifact(ctx, a.taskID, a.path)
	if err != nil {
		return "", fmt.Errorf("downloading image artifact %s of task %s to hash it: %w", a.path, a.taskID, err)
	}
	defer body.Close()
	sum := sha256.New()
	if _, err := io.Copy(sum, body); err != nil {
		return "", fmt.Errorf("downloading image artifact %s of task %s to hash it: %w", a.path, a.taskID, err)
	}
	h = "sha256:" + hex.EncodeToString(sum.Sum(nil))
	s.mu.Lock()
	s.hashes[tag] = h
	s.mu.Unlock()
	return h, nil
}

// load sends a docker-save/OCI archive to the image-load API and returns a
// reference to the loaded image (its name, or its ID when untagged).
func (s *images) load(ctx context.Context, tarball io.Reader) (string, error) {
	res, err := s.cli.ImageLoad(ctx, tarball, client.ImageLoadWithQuiet(true))
	if err != nil {
		return "", err
	}
	defer res.Close()
	var loaded []string
	dec := json.NewDecoder(res)
	for {
		var m struct {
			Stream string `json:"stream"`
			Error  string `json:"error"`
		}
		if err := dec.Decode(&m); err == io.EOF {
			break
		} else if err != nil {
			return "", fmt.Errorf("reading image-load response: %w", err)
		}
		if m.Error != "" {
			return "", errors.New(m.Error)
		}
		loaded = append(loaded, parseLoaded(m.Stream)...)
	}
	if len(loaded) == 0 {
		return "", errors.New("the daemon loaded no image")
	}
	return loaded[0], nil
}

// parseLoaded extracts image references from an image-load stream line:
// Docker says "Loaded image: name:tag" or "Loaded image ID: sha256:...",
// Podman "Loaded image: name" or "Loaded image(s): a,b".
func parseLoaded(line string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(line))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		_, rest, ok := strings.Cut(l, ":")
		if !ok || !strings.HasPrefix(strings.ToLower(l), "loaded image") {
			continue
		}
		for _, r := range strings.Split(rest, ",") {
			if r = strings.TrimSpace(r); r != "" {
				out = append(out, r)
			}
		}
	}
	return out
}

type countingReader struct {
	r   io.Reader
	n   int64
	err error
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if err != nil && err != io.EOF {
		c.err = err
	}
	return n, err
}

// decompress returns r decompressed according to its first bytes: gzip,
// zstd or lz4 (frame format), else r unchanged (a plain tar).
func decompress(r io.Reader) (io.Reader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	magic, err := br.Peek(4)
	if err != nil && len(magic) == 0 {
		return nil, fmt.Errorf("empty image archive: %w", err)
	}
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		return zr, nil
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		return zr.IOReadCloser(), nil
	case bytes.HasPrefix(magic, []byte{0x04, 0x22, 0x4d, 0x18}):
		return lz4.NewReader(br), nil
	}
	return br, nil
}

// collectGarbage removes the image references this engine used (registry
// references, task image tags), least recently used first, while the
// daemon's storage has less free space than configured; an image is
// deleted with its last reference. References in use by a sandbox and
// images the daemon refuses to remove (used by other containers) are kept.
// Failures are logged, never fatal.
func (s *images) collectGarbage(ctx context.Context, tc *task.Context) {
	if s.cfg.ImageGC.Disabled {
		return
	}
	dir := s.cfg.ImageGC.StorageDir
	if dir == "" {
		info, err := s.cli.Info(ctx, client.InfoOptions{})
		if err != nil {
			return
		}
		dir = info.Info.DockerRootDir
	}
	free := func() (int64, bool) {
		if dir == "" {
			return 0, false
		}
		n, err := diskfree.Available(dir)
		return n, err == nil
	}
	avail, ok := free()
	if !ok || avail >= s.cfg.ImageGC.MinFreeBytes {
		return
	}
	s.mu.Lock()
	type cand struct {
		id   string
		used time.Time
	}
	var cands []cand
	for id, t := range s.lastUsed {
		if s.inUse[id] == 0 {
			cands = append(cands, cand{id, t})
		}
	}
	s.mu.Unlock()
	sort.Slice(cands, func(i, j int) bool { return cands[i].used.Before(cands[j].used) })
	for _, c := range cands {
		if avail >= s.cfg.ImageGC.MinFreeBytes {
			return
		}
		_, err := s.cli.ImageRemove(ctx, c.id, client.ImageRemoveOptions{PruneChildren: true})
		if err != nil && !cerrdefs.IsNotFound(err) {
			tc.Logf("image gc: keeping image %s: %v", c.id, err)
			continue
		}
		s.mu.Lock()
		delete(s.lastUsed, c.id)
		s.mu.Unlock()
		tc.Logf("image gc: removed image %s (free space %d bytes, want %d)", c.id, avail, s.cfg.ImageGC.MinFreeBytes)
		avail, _ = free()
	}
}

func shortID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
