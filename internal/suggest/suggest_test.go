package suggest

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestClosest(t *testing.T) {
	fields := []string{"capacity", "maxRunTime", "workerId", "workerGroup"}
	assert.Equal(t, "capacity", Closest("capacty", fields))
	assert.Equal(t, "maxRunTime", Closest("maxRuntime", fields), "case differences cost nothing")
	assert.Equal(t, "workerId", Closest("workerID", fields))
	assert.Equal(t, "", Closest("zzzzzzzz", fields), "too far from everything")
	assert.Equal(t, "", Closest("ab", []string{"xy"}), "short names need a close match")
	assert.Equal(t, "", Closest("x", nil))
}
