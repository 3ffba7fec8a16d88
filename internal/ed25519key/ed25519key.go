// Package ed25519key reads and writes the Chain of Trust signing key in
// generic-worker's file format: the base64 (standard encoding) of the
// 32-byte ed25519 seed, with nothing else in the file but optional
// surrounding white space. Files holding the base64 of a 64-byte private
// key (seed followed by public key, as docker-worker's tweetnacl keys were)
// are read too. The public key is shown as the base64 of its 32 bytes, the
// form scriptworker's ed25519 public key lists use.
package ed25519key

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
)

// ErrExposed is returned by Read when the key file can be read by users
// other than its owner.
var ErrExposed = errors.New("key file is readable by group or others")

// Generate creates a fresh key pair, writes the private key to path (which
// must not exist; mode 0600) and returns the public key.
func Generate(path string) (ed25519.PublicKey, error) {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		return nil, fmt.Errorf("generating ed25519 key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("writing ed25519 private key: %w", err)
	}
	_, err = f.WriteString(base64.StdEncoding.EncodeToString(priv.Seed()))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		return nil, fmt.Errorf("writing ed25519 private key %s: %w", path, err)
	}
	return pub, nil
}

// Read reads the private key at path. On Unix the file must not be
// readable by group or others (ErrExposed, fixed with `chmod 600`).
func Read(path string) (ed25519.PrivateKey, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("reading ed25519 private key: %w", err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("ed25519 private key %s (mode %v): %w; run `chmod 600 %s`", path, fi.Mode().Perm(), ErrExposed, path)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("ed25519 private key %s: %w", path, fs.ErrInvalid)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading ed25519 private key: %w", err)
	}
	return Parse(data)
}

// Parse decodes a key file's content.
func Parse(data []byte) (ed25519.PrivateKey, error) {
	raw, err := base64.StdEncoding.DecodeString(string(bytes.TrimSpace(data)))
	if err != nil {
		return nil, fmt.Errorf("ed25519 private key: not base64: %w", err)
	}
	switch len(raw) {
	case ed25519.SeedSize:
		return ed25519.NewKeyFromSeed(raw), nil
	case ed25519.PrivateKeySize:
		k := ed25519.NewKeyFromSeed(raw[:ed25519.SeedSize])
		if !bytes.Equal(k, raw) {
			return nil, errors.New("ed25519 private key: the 64-byte key's public half does not match its seed")
		}
		return k, nil
	}
	return nil, fmt.Errorf("ed25519 private key: %d bytes after base64 decoding, want %d (a seed) or %d", len(raw), ed25519.SeedSize, ed25519.PrivateKeySize)
}

// PublicString is the base64 of the public key of priv.
func PublicString(pub ed25519.PublicKey) string {
	return base64.StdEncoding.EncodeToString(pub)
}
