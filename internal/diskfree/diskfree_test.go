package diskfree

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestAvailable(t *testing.T) {
	n, err := Available(t.TempDir())
	require.NoError(t, err)
	assert.Positive(t, n)

	_, err = Available(filepath.Join(t.TempDir(), "missing"))
	assert.ErrorContains(t, err, "missing")
}
