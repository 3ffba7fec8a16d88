package taskcluster

import (
	"net/http"
	"sync/atomic"
	"time"
)

// ClockSkewDeadband is the smallest offset a ClockSkew reports: the HTTP
// Date header has one-second resolution, so smaller estimates are noise on
// a machine whose clock is synchronised.
const ClockSkewDeadband = 2 * time.Second

// ClockSkew estimates how far the services' clock is ahead of this
// machine's, from the Date header (RFC 9110, one-second resolution) of
// every answer a Client receives. Times the Queue hands out (takenUntil,
// deadlines, expiries) are on the services' clock; Local converts them to
// this machine's, so a worker whose clock is minutes off still reclaims
// before takenUntil. The latest answer wins, so a clock stepped by NTP is
// followed at the next call.
//
// The zero value (and a nil pointer) reports no offset. It is safe for
// concurrent use.
type ClockSkew struct {
	offset atomic.Int64 // services minus local, nanoseconds
}

// Offset returns how far the services' clock is ahead of the local one
// (negative: behind); zero until an answer showed an offset of at least
// ClockSkewDeadband.
func (s *ClockSkew) Offset() time.Duration {
	if s == nil {
		return 0
	}
	return time.Duration(s.offset.Load())
}

// Local converts t, a time on the services' clock, to the local clock.
func (s *ClockSkew) Local(t time.Time) time.Time { return t.Add(-s.Offset()) }

// Remote converts t, a time on the local clock, to the services' clock.
func (s *ClockSkew) Remote(t time.Time) time.Time { return t.Add(s.Offset()) }

// Observe updates the estimate from the Date header of an answer whose
// headers arrived at received (local clock). The server writes Date as it
// starts answering, truncated to the second, so the estimate compares the
// middle of that second with the arrival: the error is the one-way latency
// plus half a second, even for a claimWork that long-polled for 20 s.
// Answers without a valid Date header are ignored.
func (s *ClockSkew) Observe(h http.Header, received time.Time) {
	if s == nil {
		return
	}
	date, err := http.ParseTime(h.Get("Date"))
	if err != nil {
		return
	}
	est := date.Add(500 * time.Millisecond).Sub(received)
	if est.Abs() < ClockSkewDeadband {
		est = 0
	}
	s.offset.Store(int64(est))
}
