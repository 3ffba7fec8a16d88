package mounts

import (
	"context"
	"encoding/base64"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/workergen/workergen/plugins"
	"github.com/workergen/workergen/task"
)

// Mount kinds, as generic-worker names them.
const (
	kindFile     = "file mount"
	kindReadOnly = "read only directory"
	kindCache    = "writable directory cache"
)

// Mount is one entry of `payload.mounts` (upstream definitions fileMount,
// writableDirectoryCache and readOnlyDirectory): exactly one of File,
// CacheName (with Directory) or Directory alone says which.
type Mount struct {
	// File is the file mount's path, relative to the task directory.
	File string `json:"file,omitempty"`
	// CacheName names a writable directory cache.
	CacheName string `json:"cacheName,omitempty"`
	// Directory is the directory mount's path, relative to the task
	// directory.
	Directory string `json:"directory,omitempty"`
	// Content is the mount's content; optional for caches.
	Content *Content `json:"content,omitempty"`
	// Format is an archive format ("tar.gz", "zip", ...) for directories,
	// a compression format ("gz", "zst", ...) or empty for files.
	Format string `json:"format,omitempty"`
}

// Content is upstream's `content`: one of artifact content (TaskID,
// Artifact, SHA256), indexed content (Namespace, Artifact), URL content
// (URL, SHA256), raw content (Raw) or base64 content (Base64).
type Content struct {
	TaskID    string  `json:"taskId,omitempty"`
	Namespace string  `json:"namespace,omitempty"`
	Artifact  string  `json:"artifact,omitempty"`
	URL       string  `json:"url,omitempty"`
	SHA256    string  `json:"sha256,omitempty"`
	Raw       *string `json:"raw,omitempty"`
	Base64    *string `json:"base64,omitempty"`
}

// String says where the content comes from, for logs and errors.
func (c *Content) String() string {
	switch {
	case c.TaskID != "":
		return fmt.Sprintf("task %s artifact %s", c.TaskID, c.Artifact)
	case c.Namespace != "":
		return fmt.Sprintf("namespace %s artifact %s", c.Namespace, c.Artifact)
	case c.URL != "":
		return "url " + c.URL
	case c.Raw != nil:
		return "raw content"
	case c.Base64 != nil:
		return "base64 content"
	}
	return "no content"
}

// inline returns the bytes of raw or base64 content; ok is false for
// content that must be downloaded.
func (c *Content) inline() (data []byte, ok bool, err error) {
	switch {
	case c.Raw != nil:
		return []byte(*c.Raw), true, nil
	case c.Base64 != nil:
		b, err := base64.StdEncoding.DecodeString(*c.Base64)
		return b, true, err
	}
	return nil, false, nil
}

// kind returns the mount's kind.
func (m *Mount) kind() string {
	switch {
	case m.File != "":
		return kindFile
	case m.CacheName != "":
		return kindCache
	}
	return kindReadOnly
}

// target returns the payload path of the mount (file or directory).
func (m *Mount) target() string {
	if m.File != "" {
		return m.File
	}
	return m.Directory
}

// decodeMounts decodes and checks `payload.mounts` against what the schema
// cannot express: relative paths inside the task directory, the cache scope
// (tc.HasScopes, so scopes the task has through a role count), and mounted
// artifacts' tasks among the task's dependencies (as generic-worker
// requires). Reasons name `payload.mounts[i]...`; an error of the scope
// expansion is returned as it is (resource-unavailable).
func decodeMounts(ctx context.Context, tc *task.Context) ([]Mount, error) {
	def := &tc.Definition
	var mounts []Mount
	if err := plugins.DecodePayloadField(def.Payload, "mounts", &mounts); err != nil {
		return nil, err
	}
	var reasons []string
	targets := map[string]int{}
	for i, m := range mounts {
		field := fmt.Sprintf("payload.mounts[%d]", i)
		pathField := field + ".directory"
		if m.File != "" {
			pathField = field + ".file"
		}
		if m.File == "" && m.Directory == "" {
			reasons = append(reasons, field+": one of file or directory is required")
			continue
		}
		base, rel, err := mountPath(tc.TaskDir, m.target())
		if err != nil {
			reasons = append(reasons, fmt.Sprintf("%s: %q %v", pathField, m.target(), err))
			continue
		}
		if m.kind() == kindCache && rel == "." {
			reasons = append(reasons, fmt.Sprintf("%s: a writable directory cache cannot be the task directory itself", pathField))
		}
		if m.kind() != kindReadOnly {
			key := filepath.Join(base, rel)
			if j, dup := targets[key]; dup {
				reasons = append(reasons, fmt.Sprintf("%s: %q is already mounted by payload.mounts[%d]", pathField, m.target(), j))
			}
			targets[key] = i
		}
		if m.kind() == kindCache {
			scope := "generic-worker:cache:" + m.CacheName
			ok, err := tc.HasScopes(ctx, scope)
			if err != nil {
				return nil, err
			}
			if !ok {
				reasons = append(reasons, fmt.Sprintf("%s.cacheName: the task needs scope %q to use cache %q", field, scope, m.CacheName))
			}
		}
		if m.kind() == kindReadOnly && m.Content == nil {
			reasons = append(reasons, field+".content: required for a read only directory")
		}
		if m.kind() == kindCache && (m.Content == nil) != (m.Format == "") {
			reasons = append(reasons, field+": content and format go together for a writable directory cache")
		}
		if m.Content != nil {
			if _, _, err := m.Content.inline(); err != nil {
				reasons = append(reasons, fmt.Sprintf("%s.content.base64: %v", field, err))
			}
			if id := m.Content.TaskID; id != "" && !slices.Contains(def.Dependencies, id) {
				reasons = append(reasons, fmt.Sprintf("%s.content.taskId: task.dependencies needs to include %s since one or more of its artifacts are mounted", field, id))
			}
		}
		if err := checkFormat(m); err != nil {
			reasons = append(reasons, fmt.Sprintf("%s.format: %v", field, err))
		}
	}
	if len(reasons) > 0 {
		return nil, task.MalformedPayload(reasons...)
	}
	return mounts, nil
}

// mountPath resolves a mount path as generic-worker does since v98
// (CHANGELOG v98.0.0, issue 6689: absolute mount paths are honoured): an
// absolute path is used as it is, returned as its parent directory (base)
// and its last element (rel); any other path is below the task directory
// (base taskDir, rel from taskRelative). The file system root itself is
// refused.
func mountPath(taskDir, p string) (base, rel string, err error) {
	if fp := filepath.FromSlash(p); filepath.IsAbs(fp) {
		clean := filepath.Clean(fp)
		if filepath.Dir(clean) == clean {
			return "", "", fmt.Errorf("is the file system root")
		}
		return filepath.Dir(clean), filepath.Base(clean), nil
	}
	rel, err = taskRelative(p)
	return taskDir, rel, err
}

// taskRelative turns a relative mount path into a clean path relative to
// the task directory; a path that leaves it ("..") or names a volume is
// refused. Leading separators (a Windows path without a volume such as
// `\dir`) are dropped.
func taskRelative(p string) (string, error) {
	if filepath.VolumeName(p) != "" {
		return "", fmt.Errorf("names a volume: mounts must be inside the task directory")
	}
	p = filepath.FromSlash(p)
	if filepath.IsAbs(p) || strings.HasPrefix(p, string(filepath.Separator)) {
		p = strings.TrimLeft(p, string(filepath.Separator))
	}
	if p == "" {
		return ".", nil
	}
	clean := filepath.Clean(p)
	if clean == "." {
		return ".", nil
	}
	if !filepath.IsLocal(clean) {
		return "", fmt.Errorf("leaves the task directory")
	}
	return clean, nil
}
