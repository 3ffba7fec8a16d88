package taskclusterproxy

import (
	"io"
	"net/http"
	"testing"
)

// BenchmarkProxyRequest is one GET through a run's proxy (Hawk signing
// included) to a fake deployment that checks the signature; compare with
// BenchmarkDirectRequest, a GET straight to it that needs no signature.
func BenchmarkProxyRequest(b *testing.B) {
	d := newDeployment(b)
	r := startRun(b, d.srv.URL, proxyOn)
	benchGet(b, r.url+"/api/queue/v1/ping")
}

func BenchmarkDirectRequest(b *testing.B) {
	d := newDeployment(b)
	benchGet(b, d.srv.URL+"/api/queue/v1/open")
}

func benchGet(b *testing.B, url string) {
	b.ReportAllocs()
	for b.Loop() {
		resp, err := http.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}
