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
		o.pending.Store(3) // the three whole tokens in the input
		var out bytes.Buffer
		r := iotest.OneByteReader(bytes.NewReader([]byte(in)))
		if size > 1 {
			r = &chunked{r: bytes.NewReader([]byte(in)), n: size}
		}
		require.NoError(t, o.copyOut(&out, r, make([]byte, 64)))
		assert.Equal(t, "firstsecond line\nend"+tok[:5], out.String(), "read size %d", size)
	}
}

// A task's last line must reach the log even when its final bytes are a
// prefix of the token and the task then goes quiet: no tail is held back
// while no token is in flight.
func TestOutputSyncDoesNotHoldOutputWithoutAToken(t *testing.T) {
	o := newOutputSync()
	o.token[0] = '\n'
	r := &thenBlock{data: []byte("ready to be killed\n"), reading: make(chan struct{}), release: make(chan struct{})}
	var out bytes.Buffer
	done := make(chan error)
	go func() { done <- o.copyOut(&out, r, make([]byte, 64)) }()
	<-r.reading // the reader is waiting for more, so what it had is written
	assert.Equal(t, "ready to be killed\n", out.String())
	close(r.release)
	require.NoError(t, <-done)
}

// thenBlock returns data on the first Read, then signals reading and
// blocks until release, then reports EOF.
type thenBlock struct {
	data             []byte
	reading, release chan struct{}
	calls            int
}

func (b *thenBlock) Read(p []byte) (int, error) {
	b.calls++
	if b.calls == 1 {
		return copy(p, b.data), nil
	}
	close(b.reading)
	<-b.release
	return 0, io.EOF
}

type chunked struct {
	r io.Reader
	n int
}

func (c *chunked) Read(p []byte) (int, error) { return c.r.Read(p[:min(len(p), c.n)]) }
