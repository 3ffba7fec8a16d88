package taskcluster

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/taskcluster/hawk"
)

func TestClockSkewObserve(t *testing.T) {
	sent := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	received := sent.Add(200 * time.Millisecond)
	// A long poll: Date is written when the answer starts, 20 s after the
	// request was sent.
	var lp ClockSkew
	lp.Observe(http.Header{"Date": {sent.Add(20 * time.Second).Format(http.TimeFormat)}}, sent.Add(20*time.Second+100*time.Millisecond))
	assert.Zero(t, lp.Offset(), "a long poll is not mistaken for an offset")

	at := func(d time.Time) http.Header {
		return http.Header{"Date": {d.UTC().Format(http.TimeFormat)}}
	}
	var s ClockSkew
	s.Observe(at(sent.Add(10*time.Minute)), received)
	assert.InDelta(t, (10 * time.Minute).Seconds(), s.Offset().Seconds(), 1, "server ahead")
	local := time.Date(2026, 1, 2, 3, 30, 0, 0, time.UTC)
	assert.InDelta(t, 0, s.Local(s.Remote(local)).Sub(local).Seconds(), 0.001)
	assert.True(t, s.Local(local.Add(10*time.Minute)).Sub(local).Abs() < time.Second, "Local undoes the offset")

	s.Observe(at(sent.Add(-3*time.Minute)), received)
	assert.InDelta(t, (-3 * time.Minute).Seconds(), s.Offset().Seconds(), 1, "the latest answer wins")

	s.Observe(at(sent.Add(time.Second)), received)
	assert.Zero(t, s.Offset(), "offsets within the deadband are noise")

	s.Observe(at(sent.Add(time.Hour)), received)
	s.Observe(http.Header{"Date": {"yesterday"}}, received)
	s.Observe(http.Header{}, received)
	assert.InDelta(t, time.Hour.Seconds(), s.Offset().Seconds(), 1, "answers without a valid Date are ignored")

	var none *ClockSkew
	assert.Zero(t, none.Offset())
	assert.Equal(t, local, none.Local(local))
	none.Observe(at(sent), received) // no panic
}

// A machine whose clock is 20 minutes behind the services' (beyond Hawk's
// 15-minute allowance) learns the offset from the first answer's Date and
// authenticates on the next attempt; without a ClockSkew it cannot.
func TestClockSkewCorrectsHawkTimestamps(t *testing.T) {
	serverNow := func() time.Time { return time.Now().Add(20 * time.Minute) }
	var attempts atomic.Int32
	auth := &hawk.Authenticator{
		Lookup: func(context.Context, string) (hawk.Client, error) {
			return hawk.Client{AccessToken: "token", Scopes: []string{"*"}}, nil
		},
		Now: serverNow,
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		attempts.Add(1)
		w.Header().Set("Date", serverNow().UTC().Format(http.TimeFormat))
		w.Header().Set("Content-Type", "application/json")
		if _, err := auth.Authenticate(r.Context(), r); err != nil {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"code": "AuthenticationFailed", "message": "` + err.Error() + `"}`))
			return
		}
		_, _ = w.Write([]byte(`{"alive": true}`))
	}))
	t.Cleanup(srv.Close)
	client := func(skew *ClockSkew) *Client {
		return &Client{RootURL: srv.URL, Credentials: StaticCredentials(Credentials{ClientID: "c", AccessToken: "token"}),
			InitialInterval: time.Millisecond, MaxInterval: 10 * time.Millisecond, Skew: skew}
	}
	ctx := context.Background()

	err := client(nil).Call(ctx, "queue", "ping", http.MethodGet, "/ping", nil, nil, nil)
	require.Error(t, err)
	assert.Equal(t, http.StatusUnauthorized, StatusCode(err))

	skew := new(ClockSkew)
	var out struct{ Alive bool }
	require.NoError(t, client(skew).Call(ctx, "queue", "ping", http.MethodGet, "/ping", nil, nil, &out))
	assert.True(t, out.Alive)
	assert.InDelta(t, (20 * time.Minute).Seconds(), skew.Offset().Seconds(), 2)

	// A genuine 401 (wrong token) is not retried once the clock is known.
	bad := client(skew)
	bad.Credentials = StaticCredentials(Credentials{ClientID: "c", AccessToken: "wrong"})
	attempts.Store(0)
	err = bad.Call(ctx, "queue", "ping", http.MethodGet, "/ping", nil, nil, nil)
	assert.Equal(t, http.StatusUnauthorized, StatusCode(err))
	assert.Equal(t, int32(1), attempts.Load())
}

// Forward gives up at once on what retrying cannot mend: here a server
// whose certificate is not trusted (one handshake, not a retry loop).
func TestForwardDoesNotRetryTLSFailures(t *testing.T) {
	var handshakes atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	srv.TLS = &tls.Config{GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
		handshakes.Add(1)
		return nil, nil
	}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	c := &Client{RootURL: "https://tc.example.com", InitialInterval: time.Millisecond, MaxInterval: time.Millisecond, MaxElapsedTime: time.Minute}
	_, err := c.Forward(context.Background(), "proxy", func(ctx context.Context) (*http.Request, error) {
		return http.NewRequestWithContext(ctx, "GET", srv.URL+"/x", nil)
	})
	require.Error(t, err)
	assert.Equal(t, int32(1), handshakes.Load())

	plain := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(plain.Close)
	_, err = c.Forward(context.Background(), "proxy", func(ctx context.Context) (*http.Request, error) {
		return http.NewRequestWithContext(ctx, "GET", strings.Replace(plain.URL, "http:", "https:", 1)+"/x", nil)
	})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "HTTPS")
}
