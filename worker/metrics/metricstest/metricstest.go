// Package metricstest reads a worker's metrics endpoint in tests, through
// the real HTTP boundary: Scrape GETs /metrics and parses Prometheus' text
// exposition format (github.com/prometheus/common/expfmt, the parser
// Prometheus' own tools use; Parse reads it from any reader); Value finds
// one series in what it parsed.
package metricstest

import (
	"io"
	"net/http"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Families are the metric families of one scrape, by metric name.
type Families map[string]*dto.MetricFamily

// Scrape GETs url (a /metrics endpoint) and parses the answer; a request
// error, a status other than 200 OK or a body that is not the text
// exposition format fails the test.
func Scrape(t testing.TB, url string) Families {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("scraping %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scraping %s: %s", url, resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/plain; version=0.0.4; charset=utf-8" {
		t.Fatalf("scraping %s: Content-Type %q, not Prometheus' text format 0.0.4", url, ct)
	}
	return Parse(t, resp.Body)
}

// Parse parses Prometheus' text exposition format from r; a malformed
// exposition fails the test.
func Parse(t testing.TB, r io.Reader) Families {
	t.Helper()
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(r)
	if err != nil {
		t.Fatalf("not the text exposition format: %v", err)
	}
	return fams
}

// Value is the value of the first series of metric name whose labels
// include labels (name, value pairs): a counter's or gauge's value, a
// histogram's sample count. ok is false when there is no such series.
func (f Families) Value(name string, labels ...string) (v float64, ok bool) {
	for _, m := range f[name].GetMetric() {
		if !hasLabels(m, labels) {
			continue
		}
		switch {
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		}
	}
	return 0, false
}

// hasLabels reports whether m has every name, value pair of labels.
func hasLabels(m *dto.Metric, labels []string) bool {
	for i := 0; i+1 < len(labels); i += 2 {
		found := false
		for _, lp := range m.GetLabel() {
			found = found || (lp.GetName() == labels[i] && lp.GetValue() == labels[i+1])
		}
		if !found {
			return false
		}
	}
	return true
}
