package artifacts

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestOrderedLog(t *testing.T) {
	var got []string
	l := orderedLog{write: func(s string) { got = append(got, s) }}
	s := make([]int, 5)
	for i := range s {
		s[i] = l.reserve()
	}
	l.note(s[3], "three")
	l.note(s[1], "one")
	l.done(s[3])
	l.done(s[1])
	l.done(s[2]) // no line
	assert.Empty(t, got, "slot 0 is not done yet")
	l.note(s[0], "zero %d", 0)
	l.done(s[0])
	assert.Equal(t, []string{"zero 0", "one", "three"}, got)
	l.note(s[4], "four, never done")
	l.flush()
	assert.Equal(t, []string{"zero 0", "one", "three", "four, never done"}, got)
}
