package ed25519key_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/internal/ed25519key"
)

func TestGenerateRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "key")
	pub, err := ed25519key.Generate(path)
	require.NoError(t, err)
	k, err := ed25519key.Read(path)
	require.NoError(t, err)
	require.Equal(t, pub, k.Public())
	_, err = ed25519key.Generate(path)
	require.Error(t, err, "an existing key file is never overwritten")
}

// generic-worker's test key pair (workers/generic-worker/testdata): the
// seed file and the public key it prints.
func TestGenericWorkerKeyFormat(t *testing.T) {
	k, err := ed25519key.Parse([]byte("tmURKlS2TRxNQSF5SmrZzXrTIsfmG0m60HeNPY77RIw=\n"))
	require.NoError(t, err)
	require.Equal(t, "hobjtV57/8vRKhn/vzbJcGo27uNbjuhwY3Vcrhc6OQc=", ed25519key.PublicString(k.Public().(ed25519.PublicKey)))
	// The 64-byte form (seed and public key) reads the same.
	k64, err := ed25519key.Parse([]byte(base64.StdEncoding.EncodeToString(k)))
	require.NoError(t, err)
	require.Equal(t, k, k64)
}

func TestParseErrors(t *testing.T) {
	for _, bad := range []string{"not base64!", base64.StdEncoding.EncodeToString(make([]byte, 31))} {
		_, err := ed25519key.Parse([]byte(bad))
		require.Error(t, err, bad)
	}
	k := ed25519.NewKeyFromSeed(make([]byte, 32))
	wrong := append([]byte(nil), k...)
	wrong[63] ^= 1
	_, err := ed25519key.Parse([]byte(base64.StdEncoding.EncodeToString(wrong)))
	require.ErrorContains(t, err, "does not match")
}

func TestReadRefusesExposedKey(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Unix modes")
	}
	path := filepath.Join(t.TempDir(), "key")
	_, err := ed25519key.Generate(path)
	require.NoError(t, err)
	require.NoError(t, os.Chmod(path, 0o644))
	_, err = ed25519key.Read(path)
	require.ErrorIs(t, err, ed25519key.ErrExposed)
	require.ErrorContains(t, err, "chmod 600")
}
