package native

import (
	"bytes"
	"io"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestOutputSyncDropsTokensAcrossReadBoundaries(t *testing.T) {
	o := newOutputSync()
	tok := string(o.token[:])
	in := "first" + tok + "second line\n" + tok + tok + "end" + tok[:5] // a trailing partial token is data
	for _, size := range []int{1, 3, 7, 16, 17, 64} {
		var out bytes.Buffer
		r := iotest.OneByteReader(bytes.NewReader([]byte(in)))
		if size > 1 {
			r = &chunked{r: bytes.NewReader([]byte(in)), n: size}
		}
		require.NoError(t, o.copyOut(&out, r, make([]byte, 64)))
		assert.Equal(t, "firstsecond line\nend"+tok[:5], out.String(), "read size %d", size)
	}
}

type chunked struct {
	r io.Reader
	n int
}

func (c *chunked) Read(p []byte) (int, error) { return c.r.Read(p[:min(len(p), c.n)]) }
