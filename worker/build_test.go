package worker

import (
	"bytes"
	"compress/gzip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Gunzip inflates what the generator embeds, and damaged data panics with
// a message saying how to fix it.
func TestGunzip(t *testing.T) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, err := zw.Write([]byte(`{"type":"object"}`))
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	assert.Equal(t, `{"type":"object"}`, string(Gunzip(buf.Bytes())))

	damaged := buf.Bytes()[:buf.Len()-6]
	assert.PanicsWithValue(t, "workergen: the generated main's embedded data does not inflate (unexpected EOF); generate the profile again", func() { Gunzip(damaged) })
	assert.Panics(t, func() { Gunzip([]byte("{}")) })
}
