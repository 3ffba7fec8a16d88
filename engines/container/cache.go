package container

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"sync"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/workergen/workergen/task"
)

// caches hands out cache volumes, at most one run per volume at a time.
type caches struct {
	cli    *client.Client
	labels map[string]string // worker labels
	prefix string            // volume name prefix, unique per worker

	mu   sync.Mutex
	busy map[string]bool // volume name -> in use
}

func newCaches(cli *client.Client, workerLabels map[string]string) *caches {
	h := sha256.Sum256([]byte(workerLabels[LabelWorkerPoolID] + "\x00" + workerLabels[LabelWorkerGroup] + "\x00" + workerLabels[LabelWorkerID]))
	return &caches{cli: cli, labels: workerLabels, prefix: "workergen-cache-" + hex.EncodeToString(h[:4]) + "-", busy: map[string]bool{}}
}

var unsafeVolumeChars = regexp.MustCompile(`[^a-zA-Z0-9_.-]+`)

// volumeBase is the cache's volume name without instance number: a readable
// slug of the name plus a hash, so distinct names never collide.
func (c *caches) volumeBase(name string) string {
	slug := unsafeVolumeChars.ReplaceAllString(name, "_")
	if len(slug) > 48 {
		slug = slug[:48]
	}
	h := sha256.Sum256([]byte(name))
	return c.prefix + slug + "-" + hex.EncodeToString(h[:4])
}

// cacheUse is one run's use of a cache volume.
type cacheUse struct {
	name, volume, mountPath string
	created                 bool
}

// acquire reserves a free instance of cache name (creating its volume when
// needed) for tc's run.
func (c *caches) acquire(ctx context.Context, tc *task.Context, name, mountPath string) (*cacheUse, error) {
	base := c.volumeBase(name)
	c.mu.Lock()
	var vol string
	for i := 0; ; i++ {
		vol = base + "-" + strconv.Itoa(i)
		if !c.busy[vol] {
			c.busy[vol] = true
			break
		}
	}
	c.mu.Unlock()
	use := &cacheUse{name: name, volume: vol, mountPath: mountPath}
	if _, err := c.cli.VolumeInspect(ctx, vol, client.VolumeInspectOptions{}); err == nil {
		tc.Logf("cache %s: reusing volume %s at %s", name, vol, mountPath)
		return use, nil
	} else if !cerrdefs.IsNotFound(err) {
		c.release(ctx, tc, use, false)
		return nil, task.ResourceUnavailable(fmt.Errorf("inspecting cache volume %s: %w", vol, err))
	}
	labels := map[string]string{LabelCache: name, LabelTaskID: tc.TaskID}
	for k, v := range c.labels {
		labels[k] = v
	}
	if _, err := c.cli.VolumeCreate(ctx, client.VolumeCreateOptions{Name: vol, Labels: labels}); err != nil {
		c.release(ctx, tc, use, false)
		return nil, task.ResourceUnavailable(fmt.Errorf("creating cache volume %s: %w", vol, err))
	}
	use.created = true
	tc.Logf("cache %s: new volume %s at %s", name, vol, mountPath)
	return use, nil
}

// release frees use; with purge the volume is removed first.
func (c *caches) release(ctx context.Context, tc *task.Context, use *cacheUse, purge bool) error {
	var err error
	if purge {
		if _, rerr := c.cli.VolumeRemove(ctx, use.volume, client.VolumeRemoveOptions{Force: true}); rerr != nil && !cerrdefs.IsNotFound(rerr) {
			err = fmt.Errorf("purging cache %s (volume %s): %w", use.name, use.volume, rerr)
		} else {
			tc.Logf("cache %s: purged (volume %s removed)", use.name, use.volume)
		}
	}
	c.mu.Lock()
	delete(c.busy, use.volume)
	c.mu.Unlock()
	return err
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
