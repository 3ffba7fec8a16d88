package artifacts

import (
	"mime"
	"net/http"
	"path"
	"strings"

	"github.com/workergen/workergen/task"
)

// sniffLen is how many leading bytes content sniffing reads
// (net/http.DetectContentType considers at most 512).
const sniffLen = 512

// extraTypes complement the system's extension table, as generic-worker's
// customMimeMappings do (keys lower-case, with the dot).
var extraTypes = map[string]string{
	".log": "text/plain; charset=utf-8",
}

// typeByExtension guesses a MIME type from name's extension: first
// extraTypes, then mime.TypeByExtension (Go's table plus the system's
// mime.types files). It returns "" when the extension says nothing.
func typeByExtension(name string) string {
	ext := strings.ToLower(path.Ext(strings.ReplaceAll(name, `\`, "/")))
	if ext == "" {
		return ""
	}
	if t, ok := extraTypes[ext]; ok {
		return t
	}
	return mime.TypeByExtension(ext)
}

// sniffType guesses a MIME type from the first bytes of the content; it
// returns "application/octet-stream" when it cannot tell.
func sniffType(head []byte) string { return http.DetectContentType(head) }

// compressedExtensions are the extensions upstream serves with
// `identity` encoding because the content is compressed already (the list in
// the payload schema's `contentEncoding` description), plus a few more of the
// same kind.
var compressedExtensions = map[string]bool{
	".7z": true, ".aab": true, ".apk": true, ".bz2": true, ".deb": true,
	".dmg": true, ".flv": true, ".gif": true, ".gz": true, ".jar": true,
	".jpeg": true, ".jpg": true, ".npz": true, ".pkg": true, ".png": true,
	".swf": true, ".tbz": true, ".tgz": true, ".wasm": true, ".webp": true,
	".whl": true, ".woff": true, ".woff2": true, ".xpi": true, ".xz": true,
	".zip": true, ".zst": true,
	// Not in upstream's list, compressed all the same.
	".br": true, ".lz4": true, ".lzma": true, ".txz": true, ".tzst": true,
	".rpm": true, ".nupkg": true, ".mp4": true, ".webm": true, ".mkv": true,
	".mp3": true, ".ogg": true, ".avif": true, ".heic": true,
}

// compressedTypes are MIME types whose content is compressed already.
var compressedTypes = map[string]bool{
	"application/gzip": true, "application/x-gzip": true,
	"application/zip": true, "application/x-bzip2": true,
	"application/x-xz": true, "application/zstd": true,
	"application/x-7z-compressed": true, "application/java-archive": true,
	"application/vnd.android.package-archive": true, "application/wasm": true,
	"image/png": true, "image/jpeg": true, "image/gif": true, "image/webp": true,
	"image/avif": true, "font/woff": true, "font/woff2": true,
}

// chooseEncoding returns the content encoding for a file artifact named name
// with content type contentType when the payload did not set one: identity
// for content compressed already (by extension, then by MIME type: audio/*,
// video/* and the compressed types above), else gzip.
func chooseEncoding(name, contentType string) string {
	ext := strings.ToLower(path.Ext(strings.ReplaceAll(name, `\`, "/")))
	if compressedExtensions[ext] {
		return task.EncodingIdentity
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		mt = strings.ToLower(strings.TrimSpace(contentType))
	}
	if compressedTypes[mt] || strings.HasPrefix(mt, "video/") || strings.HasPrefix(mt, "audio/") {
		return task.EncodingIdentity
	}
	return task.EncodingGzip
}
