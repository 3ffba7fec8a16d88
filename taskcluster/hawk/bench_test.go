package hawk

import (
	"context"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"
)

// BenchmarkSignHeader measures signing one request with temporary
// credentials (certificate in ext), as a worker does for every call.
func BenchmarkSignHeader(b *testing.B) {
	now := time.Now()
	tmp, err := CreateTemporaryCredentials(Credentials{ClientID: "worker", AccessToken: "token"}, "task-client/x", []string{"queue:*"}, now, now.Add(time.Hour))
	if err != nil {
		b.Fatal(err)
	}
	u, _ := url.Parse("https://tc.example.com/api/queue/v1/task/fN1SbArXTPSVFNUvaOlinQ/runs/0/reclaim")
	req := RequestFromURL("POST", u)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := SignHeader(tmp, req, now, ""); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAuthenticate measures the server side: parsing, certificate
// verification, key derivation and MAC check.
func BenchmarkAuthenticate(b *testing.B) {
	now := time.Now()
	perm := Credentials{ClientID: "worker", AccessToken: "token"}
	tmp, err := CreateTemporaryCredentials(perm, "task-client/x", []string{"queue:*"}, now, now.Add(time.Hour))
	if err != nil {
		b.Fatal(err)
	}
	a := &Authenticator{Lookup: func(context.Context, string) (Client, error) {
		return Client{AccessToken: "token", Scopes: []string{"*"}}, nil
	}}
	r := httptest.NewRequest("POST", "http://tc.example.com/api/queue/v1/task/x/runs/0/reclaim", nil)
	h, err := SignHeader(tmp, RequestFromHTTP(r), now, "")
	if err != nil {
		b.Fatal(err)
	}
	r.Header.Set("Authorization", h)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Authenticate(context.Background(), r); err != nil {
			b.Fatal(err)
		}
	}
}
