package worker

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The outage lines carry their durations as slog durations, as every
// other duration of the worker log: integers of nanoseconds with
// logFormat json (the README's Telemetry section), "1.5s" in text.
func TestOutageLogDurationsAreNumbersInJSON(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, nil))
	o := newOutageLog(func() *slog.Logger { return logger }, time.Hour) // reminders by hand
	refused := errors.New("connection refused")
	o.failed(logger, "claimWork", refused)
	o.failed(logger, "claimWork", refused)
	o.remind()
	o.succeeded("claimWork")

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	require.Len(t, lines, 3, buf.String())
	records := make([]map[string]any, len(lines))
	for i, l := range lines {
		require.NoError(t, json.Unmarshal([]byte(l), &records[i]), l)
	}
	assert.Equal(t, "Queue outage: calls to the Queue are failing; retrying", records[0]["msg"])
	assert.Equal(t, "Queue outage continues", records[1]["msg"])
	assert.IsType(t, float64(0), records[1]["for"], "for: %s", lines[1])
	assert.Equal(t, float64(2), records[1]["retries"])
	assert.Equal(t, "Queue outage over: calls to the Queue succeed again", records[2]["msg"])
	assert.IsType(t, float64(0), records[2]["duration"], "duration: %s", lines[2])
	assert.Equal(t, float64(2), records[2]["retries"])

	buf.Reset()
	text := slog.New(slog.NewTextHandler(&buf, nil))
	o = newOutageLog(func() *slog.Logger { return text }, time.Hour)
	o.failed(text, "reclaimTask", refused)
	o.succeeded("reclaimTask")
	assert.Regexp(t, `Queue outage over.* duration=\d+(\.\d+)?(ns|µs|ms|s) retries=1`, buf.String())
}
