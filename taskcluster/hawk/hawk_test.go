package hawk

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Example credentials and MACs published with the Hawk specification
// (hueniverse/hawk README and tests).
const (
	specID  = "dh37fgj492je"
	specKey = "werxhqb98rpaxn39848xrunpaw3489ruxnpa98w4rxn"
)

func specRequest(t *testing.T, method string) Request {
	t.Helper()
	u, err := url.Parse("http://example.com:8000/resource/1?b=1&a=2")
	require.NoError(t, err)
	return RequestFromURL(method, u)
}

func TestHeaderSpecVectors(t *testing.T) {
	ts := time.Unix(1353832234, 0)
	h := NewHeader(specID, specKey, specRequest(t, "GET"), ts, "j4h3g2", "", "some-app-ext-data")
	assert.Equal(t, `Hawk id="dh37fgj492je", ts="1353832234", nonce="j4h3g2", ext="some-app-ext-data", mac="6R4rV5iE+NPoym+WwjeHzjAGXUtLNIxmo1vpMofpLAE="`, h.String())

	hash := PayloadHash("text/plain", []byte("Thank you for flying Hawk"))
	assert.Equal(t, "Yi9LfIIFRtBEPt74PVmbTF/xVAwPn7ub15ePICfgnuY=", hash)
	assert.Equal(t, hash, PayloadHash(" Text/Plain; charset=utf-8", []byte("Thank you for flying Hawk")), "content type parameters and case are ignored")
	h = NewHeader(specID, specKey, specRequest(t, "POST"), ts, "j4h3g2", hash, "some-app-ext-data")
	assert.Equal(t, `Hawk id="dh37fgj492je", ts="1353832234", nonce="j4h3g2", hash="Yi9LfIIFRtBEPt74PVmbTF/xVAwPn7ub15ePICfgnuY=", ext="some-app-ext-data", mac="aSe1DERmZuRl3pI36/9BdZmnErTw3sNzOOAUlfeKjVw="`, h.String())
}

func TestParseHeaderRoundTrip(t *testing.T) {
	ts := time.Unix(1353832234, 0)
	req := specRequest(t, "POST")
	h := NewHeader(specID, specKey, req, ts, "j4h3g2", PayloadHash("text/plain", []byte("x")), "ext")
	h.App, h.Dlg = "app1", "dlg1"
	h.MAC = h.ExpectedMAC(specKey, req)
	p, err := ParseHeader(h.String())
	require.NoError(t, err)
	assert.Equal(t, h, p)
	require.NoError(t, p.Verify(specKey, req))
	require.NoError(t, p.VerifyPayloadHash("text/plain", []byte("x")))
	assert.ErrorIs(t, p.VerifyPayloadHash("text/plain", []byte("y")), ErrBadPayloadHash)

	other := req
	other.Resource = "/resource/2"
	assert.ErrorIs(t, p.Verify(specKey, other), ErrBadMAC)
	assert.ErrorIs(t, p.Verify("wrong", req), ErrBadMAC)
}

func TestParseHeaderErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		value string
		want  error
	}{
		"empty":         {"", ErrMissingAuth},
		"bearer":        {"Bearer abc", ErrMissingAuth},
		"no mac":        {`Hawk id="a", ts="1", nonce="n"`, ErrMalformed},
		"bad ts":        {`Hawk id="a", ts="x", nonce="n", mac="m"`, ErrMalformed},
		"unknown attr":  {`Hawk id="a", ts="1", nonce="n", mac="m", foo="b"`, ErrMalformed},
		"duplicate":     {`Hawk id="a", id="b", ts="1", nonce="n", mac="m"`, ErrMalformed},
		"unterminated":  {`Hawk id="a`, ErrMalformed},
		"no quotes":     {`Hawk id=a`, ErrMalformed},
		"missing comma": {`Hawk id="a" ts="1"`, ErrMalformed},
		"backslash":     {`Hawk id="a\", ts="1", nonce="n", mac="m"`, ErrMalformed},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseHeader(tc.value)
			assert.ErrorIs(t, err, tc.want)
		})
	}
}

func TestCheckTimestamp(t *testing.T) {
	now := time.Unix(1000000, 0)
	assert.NoError(t, CheckTimestamp(now.Unix()-60, now, time.Minute))
	assert.NoError(t, CheckTimestamp(now.Unix()+60, now, time.Minute))
	assert.ErrorIs(t, CheckTimestamp(now.Unix()-61, now, time.Minute), ErrStaleTimestamp)
	assert.ErrorIs(t, CheckTimestamp(now.Unix()+61, now, time.Minute), ErrStaleTimestamp)
}

func TestBewitSpecVector(t *testing.T) {
	u, err := url.Parse("https://example.com/somewhere/over/the/rainbow")
	require.NoError(t, err)
	got := NewBewit("123456", "2983d45yun89q", u, time.Unix(1356420707, 0), "xandyandz")
	assert.Equal(t, "MTIzNDU2XDEzNTY0MjA3MDdca3NjeHdOUjJ0SnBQMVQxekRMTlBiQjVVaUtJVTl0T1NKWFRVZEc3WDloOD1ceGFuZHlhbmR6", got)

	b, err := ParseBewit(got)
	require.NoError(t, err)
	assert.Equal(t, &Bewit{ID: "123456", Exp: 1356420707, MAC: "kscxwNR2tJpP1T1zDLNPbB5UiKIU9tOSJXTUdG7X9h8=", Ext: "xandyandz"}, b)
	req := RequestFromURL("GET", u)
	require.NoError(t, b.Verify("2983d45yun89q", req, time.Unix(1356420707, 0)))
	assert.ErrorIs(t, b.Verify("2983d45yun89q", req, time.Unix(1356420708, 0)), ErrBewitExpired)
	assert.ErrorIs(t, b.Verify("other", req, time.Unix(1356420000, 0)), ErrBadMAC)

	_, err = ParseBewit("!!")
	assert.ErrorIs(t, err, ErrMalformed)
	_, err = ParseBewit("YWJj") // "abc"
	assert.ErrorIs(t, err, ErrMalformed)
}

func TestStripBewit(t *testing.T) {
	for in, want := range map[string][2]string{
		"/a":                   {"", "/a"},
		"/a?x=1":               {"", "/a?x=1"},
		"/a?bewit=B":           {"B", "/a"},
		"/a?x=1&bewit=B":       {"B", "/a?x=1"},
		"/a?bewit=B&x=1":       {"B", "/a?x=1"},
		"/a?x=1&bewit=B&y=2":   {"B", "/a?x=1&y=2"},
		"/a?notbewit=1&bewit=": {"", "/a?notbewit=1"},
	} {
		b, rest, _ := StripBewit(in)
		assert.Equal(t, want, [2]string{b, rest}, in)
	}
}

func TestRequestFromHTTP(t *testing.T) {
	r := httptest.NewRequest("GET", "http://Example.COM:8080/a%20b/c+d?q=1", nil)
	assert.Equal(t, Request{Method: "GET", Resource: "/a%20b/c+d?q=1", Host: "Example.COM", Port: 8080}, RequestFromHTTP(r))
	r = httptest.NewRequest("GET", "https://example.com/x", nil)
	assert.Equal(t, 443, RequestFromHTTP(r).Port)
	r = httptest.NewRequest("GET", "http://example.com/x", nil)
	assert.Equal(t, 80, RequestFromHTTP(r).Port)
}

// sharedDir is ../shared next to the repository root (the directory holding
// go.mod).
func sharedDir(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	require.NoError(t, err)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "..", "shared")
		}
		parent := filepath.Dir(dir)
		require.NotEqual(t, parent, dir, "go.mod not found")
		dir = parent
	}
}

// TestTemporaryCredentialsUpstreamVectors checks certificate creation
// against Taskcluster's published test cases.
func TestTemporaryCredentialsUpstreamVectors(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(sharedDir(t), "taskcluster", "hawk-temp-credentials-testcases.json"))
	require.NoError(t, err)
	var cases []struct {
		Description       string      `json:"description"`
		PermCreds         Credentials `json:"permCreds"`
		ExpectedTempCreds Credentials `json:"expectedTempCreds"`
		Seed              string      `json:"seed"`
		Start             time.Time   `json:"start"`
		Expiry            time.Time   `json:"expiry"`
		TempCredsName     string      `json:"tempCredsName"`
		TempCredsScopes   []string    `json:"tempCredsScopes"`
	}
	require.NoError(t, json.Unmarshal(raw, &cases))
	require.NotEmpty(t, cases)
	for _, tc := range cases {
		t.Run(tc.Description, func(t *testing.T) {
			got, err := CreateTemporaryCredentialsWithSeed(tc.PermCreds, tc.TempCredsName, tc.TempCredsScopes, tc.Start, tc.Expiry, tc.Seed)
			require.NoError(t, err)
			assert.Equal(t, tc.ExpectedTempCreds, got)

			// And the server side accepts it.
			cert, err := ParseCertificate([]byte(got.Certificate))
			require.NoError(t, err)
			require.NoError(t, cert.Verify(tc.PermCreds.AccessToken, got.ClientID, tc.Start))
			assert.Equal(t, got.AccessToken, TemporaryAccessToken(tc.PermCreds.AccessToken, cert.Seed))
			assert.ErrorIs(t, cert.Verify("wrong", got.ClientID, tc.Start), ErrBadCertificate)
			assert.ErrorIs(t, cert.Verify(tc.PermCreds.AccessToken, got.ClientID, tc.Expiry.Add(time.Hour)), ErrCertificateExpired)
			if tc.TempCredsName != "" {
				assert.ErrorIs(t, cert.Verify(tc.PermCreds.AccessToken, "someone/else", tc.Start), ErrBadCertificate)
			}
		})
	}
}

func TestCreateTemporaryCredentialsErrors(t *testing.T) {
	perm := Credentials{ClientID: "c", AccessToken: "t"}
	now := time.Now()
	_, err := CreateTemporaryCredentials(Credentials{}, "", nil, now, now.Add(time.Hour))
	assert.ErrorIs(t, err, ErrMissingCredentials)
	_, err = CreateTemporaryCredentials(perm, "", nil, now, now.Add(32*24*time.Hour))
	assert.ErrorIs(t, err, ErrBadCertificate)
	tmp, err := CreateTemporaryCredentials(perm, "", []string{"a"}, now, now.Add(time.Hour))
	require.NoError(t, err)
	_, err = CreateTemporaryCredentials(tmp, "", nil, now, now.Add(time.Hour))
	assert.ErrorIs(t, err, ErrBadCertificate)
	cert, err := ParseCertificate([]byte(tmp.Certificate))
	require.NoError(t, err)
	assert.Len(t, cert.Seed, 44)
	assert.Empty(t, cert.Issuer)
}

func TestExt(t *testing.T) {
	ext, err := CredentialsExt(Credentials{ClientID: "c", AccessToken: "t"})
	require.NoError(t, err)
	assert.Empty(t, ext)

	ext, err = CredentialsExt(Credentials{ClientID: "c", AccessToken: "t", AuthorizedScopes: []string{}})
	require.NoError(t, err)
	e, err := ParseExt(ext)
	require.NoError(t, err)
	require.NotNil(t, e.AuthorizedScopes)
	assert.Empty(t, *e.AuthorizedScopes)
	assert.Nil(t, e.Certificate)

	now := time.Now()
	tmp, err := CreateTemporaryCredentials(Credentials{ClientID: "c", AccessToken: "t", AuthorizedScopes: []string{"a"}}, "n", []string{"a", "b"}, now, now.Add(time.Hour))
	require.NoError(t, err)
	ext, err = CredentialsExt(tmp)
	require.NoError(t, err)
	e, err = ParseExt(ext)
	require.NoError(t, err)
	// The certificate travels as a JSON object, not a string.
	assert.JSONEq(t, tmp.Certificate, string(e.Certificate))
	assert.Equal(t, []string{"a"}, *e.AuthorizedScopes)

	_, err = CredentialsExt(Credentials{ClientID: "c", AccessToken: "t", Certificate: "not json"})
	assert.ErrorIs(t, err, ErrBadCertificate)
	_, err = ParseExt("%%%")
	assert.ErrorIs(t, err, ErrMalformed)
}

// TestAuthenticator runs signed requests through a real HTTP server that
// verifies them.
func TestAuthenticator(t *testing.T) {
	clients := map[string]Client{
		"worker":  {AccessToken: "worker-token", Scopes: []string{"queue:*", "auth:create-client:task-client/*"}},
		"limited": {AccessToken: "limited-token", Scopes: []string{"queue:claim-work:a/b"}},
	}
	now := time.Now()
	var offset atomic.Int64 // server clock offset, ns
	clock := func() time.Time { return now.Add(time.Duration(offset.Load())) }
	auth := &Authenticator{
		Now: clock,
		Lookup: func(_ context.Context, id string) (Client, error) {
			c, ok := clients[id]
			if !ok {
				return Client{}, ErrUnknownClient
			}
			return c, nil
		},
	}
	var gotID atomic.Pointer[Identity]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := auth.Authenticate(r.Context(), r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		gotID.Store(id)
	}))
	defer srv.Close()

	var got *Identity
	do := func(t *testing.T, creds Credentials, signedAt time.Time, path string) (int, string) {
		t.Helper()
		u, err := url.Parse(srv.URL + path)
		require.NoError(t, err)
		gotID.Store(nil)
		req, err := http.NewRequest("GET", u.String(), nil)
		require.NoError(t, err)
		h, err := SignHeader(creds, RequestFromURL("GET", req.URL), signedAt, "")
		require.NoError(t, err)
		req.Header.Set("Authorization", h)
		resp, err := srv.Client().Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		got = gotID.Load()
		return resp.StatusCode, string(b)
	}
	perm := Credentials{ClientID: "worker", AccessToken: "worker-token"}

	t.Run("permanent", func(t *testing.T) {
		code, body := do(t, perm, now, "/api/queue/v1/task/abc/artifacts/a%20b+c%2Fd?x=1")
		require.Equal(t, 200, code, body)
		assert.Equal(t, "worker", got.ClientID)
		assert.Equal(t, clients["worker"].Scopes, got.Scopes)
		assert.Empty(t, got.Issuer)
	})
	t.Run("authorizedScopes", func(t *testing.T) {
		c := perm
		c.AuthorizedScopes = []string{"queue:claim-work:x/y"}
		code, body := do(t, c, now, "/")
		require.Equal(t, 200, code, body)
		assert.Equal(t, []string{"queue:claim-work:x/y"}, got.Scopes)
		c.AuthorizedScopes = []string{"auth:delete-client:x"}
		code, body = do(t, c, now, "/")
		assert.Equal(t, 401, code)
		assert.Contains(t, body, ErrScopes.Error())
	})
	t.Run("wrong token", func(t *testing.T) {
		code, body := do(t, Credentials{ClientID: "worker", AccessToken: "nope"}, now, "/")
		assert.Equal(t, 401, code)
		assert.Contains(t, body, ErrBadMAC.Error())
	})
	t.Run("unknown client", func(t *testing.T) {
		code, body := do(t, Credentials{ClientID: "ghost", AccessToken: "x"}, now, "/")
		assert.Equal(t, 401, code)
		assert.Contains(t, body, ErrUnknownClient.Error())
	})
	t.Run("stale", func(t *testing.T) {
		code, body := do(t, perm, now.Add(-20*time.Minute), "/")
		assert.Equal(t, 401, code)
		assert.Contains(t, body, ErrStaleTimestamp.Error())
	})
	t.Run("unnamed temporary", func(t *testing.T) {
		tmp, err := CreateTemporaryCredentials(perm, "", []string{"queue:claim-work:a/b"}, now.Add(-time.Minute), now.Add(time.Hour))
		require.NoError(t, err)
		code, body := do(t, tmp, now, "/")
		require.Equal(t, 200, code, body)
		assert.Equal(t, "worker", got.ClientID)
		assert.Equal(t, "worker", got.Issuer)
		assert.Equal(t, []string{"queue:claim-work:a/b"}, got.Scopes)
		assert.Equal(t, now.Add(time.Hour).UnixMilli(), got.Expires.UnixMilli())
	})
	t.Run("named temporary", func(t *testing.T) {
		tmp, err := CreateTemporaryCredentials(perm, "task-client/T1", []string{"queue:x"}, now, now.Add(time.Hour))
		require.NoError(t, err)
		code, body := do(t, tmp, now, "/")
		require.Equal(t, 200, code, body)
		assert.Equal(t, "task-client/T1", got.ClientID)
		assert.Equal(t, "worker", got.Issuer)
	})
	t.Run("named temporary without create-client", func(t *testing.T) {
		tmp, err := CreateTemporaryCredentials(perm, "other/T1", []string{"queue:x"}, now, now.Add(time.Hour))
		require.NoError(t, err)
		code, body := do(t, tmp, now, "/")
		assert.Equal(t, 401, code)
		assert.Contains(t, body, "auth:create-client:other/T1")
	})
	t.Run("temporary beyond issuer scopes", func(t *testing.T) {
		lim := Credentials{ClientID: "limited", AccessToken: "limited-token"}
		tmp, err := CreateTemporaryCredentials(lim, "", []string{"queue:*"}, now, now.Add(time.Hour))
		require.NoError(t, err)
		code, body := do(t, tmp, now, "/")
		assert.Equal(t, 401, code)
		assert.Contains(t, body, ErrScopes.Error())
	})
	t.Run("expired temporary", func(t *testing.T) {
		tmp, err := CreateTemporaryCredentials(perm, "", []string{"queue:x"}, now.Add(-3*time.Hour), now.Add(-2*time.Hour))
		require.NoError(t, err)
		code, body := do(t, tmp, now, "/")
		assert.Equal(t, 401, code)
		assert.Contains(t, body, ErrCertificateExpired.Error())
	})
	t.Run("temporary with tampered scopes", func(t *testing.T) {
		tmp, err := CreateTemporaryCredentials(perm, "", []string{"queue:x"}, now, now.Add(time.Hour))
		require.NoError(t, err)
		tmp.Certificate = strings.Replace(tmp.Certificate, "queue:x", "queue:y", 1)
		code, body := do(t, tmp, now, "/")
		assert.Equal(t, 401, code)
		assert.Contains(t, body, ErrBadCertificate.Error())
	})
	t.Run("bewit", func(t *testing.T) {
		tmp, err := CreateTemporaryCredentials(perm, "", []string{"queue:get-artifact:private/*"}, now, now.Add(time.Hour))
		require.NoError(t, err)
		u, err := url.Parse(srv.URL + "/api/queue/v1/task/abc/runs/0/artifacts/private%2Fa%20b+c?x=1")
		require.NoError(t, err)
		signed, err := SignURL(tmp, u, now, 15*time.Minute)
		require.NoError(t, err)
		resp, err := srv.Client().Get(signed.String())
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, 200, resp.StatusCode)
		got = gotID.Load()
		assert.Equal(t, []string{"queue:get-artifact:private/*"}, got.Scopes)
		assert.Nil(t, got.Header)

		// A bewit does not authorise other methods.
		post, err := http.NewRequest("POST", signed.String(), nil)
		require.NoError(t, err)
		_, err = auth.Authenticate(context.Background(), post)
		assert.ErrorIs(t, err, ErrMalformed)

		offset.Store(int64(16 * time.Minute))
		defer offset.Store(0)
		resp, err = srv.Client().Get(signed.String())
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, 401, resp.StatusCode)
	})
	t.Run("missing", func(t *testing.T) {
		resp, err := srv.Client().Get(srv.URL + "/")
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, 401, resp.StatusCode)
		r := httptest.NewRequest("GET", "/", nil)
		_, err = auth.Authenticate(context.Background(), r)
		assert.True(t, errors.Is(err, ErrMissingAuth))
	})
}
