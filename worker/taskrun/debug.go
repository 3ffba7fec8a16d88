package taskrun

import (
	"context"
	"log/slog"
	"time"
)

// debugStage writes the debug line of a stage starting, on the run's
// logger (task.Context.Logger, else the Runner's), and returns the
// function that writes the line of its end, with its duration and error.
// With debug off it costs one Enabled check.
func (ru *run) debugStage(stage Stage) (done func(error)) {
	log := ru.tc.Logger
	if log == nil {
		log = ru.r.logger()
	}
	if !log.Enabled(context.Background(), slog.LevelDebug) {
		return func(error) {}
	}
	log.Debug("stage started", "stage", stage)
	start := time.Now()
	return func(err error) {
		if err != nil {
			log.Debug("stage ended", "stage", stage, "duration", time.Since(start), "error", err)
			return
		}
		log.Debug("stage ended", "stage", stage, "duration", time.Since(start))
	}
}
