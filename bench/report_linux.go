package bench

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// results hold every sample by scenario and worker ("floor" for floors).
type results struct {
	m map[string]map[string][]sample
}

func newResults() *results { return &results{m: map[string]map[string][]sample{}} }

func (r *results) add(scen, who string, s sample) {
	if r.m[scen] == nil {
		r.m[scen] = map[string][]sample{}
	}
	r.m[scen][who] = append(r.m[scen][who], s)
}

// metric extracts one figure from a sample; ok is false when the sample
// does not have it.
type metric struct {
	name  string
	value func(s sample, sc *scenario) (float64, bool)
	floor bool // the floor has this figure
}

func metrics(sc *scenario) []metric {
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	mb := func(n int64) float64 { return float64(n) / (1 << 20) }
	wall := metric{name: "wall s", floor: true, value: func(s sample, _ *scenario) (float64, bool) { return s.wall.Seconds(), true }}
	if sc.perTask {
		wall = metric{name: "ms per task", floor: true, value: func(s sample, sc *scenario) (float64, bool) {
			return ms(s.wall) / float64(sc.tasks), true
		}}
	}
	catFloor := sc.name == "stdout"
	return []metric{
		wall,
		{name: "worker CPU s", floor: catFloor, value: func(s sample, _ *scenario) (float64, bool) { return s.cpu.Seconds(), true }},
		{name: "peak RSS MB", value: func(s sample, _ *scenario) (float64, bool) { return mb(s.peak), true }},
		{name: "idle RSS MB", value: func(s sample, _ *scenario) (float64, bool) { return mb(s.idleRSS), s.idleRSS > 0 }},
		{name: "disk written MB", floor: catFloor, value: func(s sample, _ *scenario) (float64, bool) { return mb(s.disk), true }},
	}
}

// median of the samples' values (errored samples left out); NaN if none.
func median(ss []sample, sc *scenario, m metric) float64 {
	var v []float64
	for _, s := range ss {
		if s.err != nil {
			continue
		}
		if x, ok := m.value(s, sc); ok {
			v = append(v, x)
		}
	}
	if len(v) == 0 {
		return math.NaN()
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func num(x float64) string {
	switch {
	case math.IsNaN(x):
		return "-"
	case math.Abs(x) >= 100:
		return fmt.Sprintf("%.0f", x)
	case math.Abs(x) >= 10:
		return fmt.Sprintf("%.1f", x)
	default:
		return fmt.Sprintf("%.3g", x)
	}
}

func ratio(a, b float64) string {
	if math.IsNaN(a) || math.IsNaN(b) || b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", a/b)
}

// print writes the table of medians and ratios, then every repeat.
func (r *results) print(w io.Writer, scens []*scenario, workers []string, opts Options) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "scenario\tmetric\tfloor\tgeneric-worker\tworkergen\tratio wg/gw\twg/floor\n")
	for _, sc := range scens {
		title := strings.ReplaceAll(sc.title, "SIZE", fmt.Sprint(opts.SizeMB))
		for _, m := range metrics(sc) {
			floor := math.NaN()
			if m.floor {
				floor = median(r.m[sc.name]["floor"], sc, m)
			}
			wg := median(r.m[sc.name]["workergen"], sc, m)
			gw := median(r.m[sc.name]["generic-worker"], sc, m)
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", title, m.name, num(floor), num(gw), num(wg), ratio(wg, gw), ratio(wg, floor))
			title = ""
		}
		if sc.perTask && sc.floor != nil {
			m := metrics(sc)[0]
			floor := median(r.m[sc.name]["floor"], sc, m)
			wg := median(r.m[sc.name]["workergen"], sc, m) - floor
			gw := median(r.m[sc.name]["generic-worker"], sc, m) - floor
			fmt.Fprintf(tw, "\tms per task above the round trip\t\t%s\t%s\t%s\t\n", num(gw), num(wg), ratio(wg, gw))
		}
		for who, reason := range sc.skip {
			fmt.Fprintf(tw, "\t(%s not run: %s)\t\t\t\t\t\n", who, reason)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nmedians of %d rounds; floor: claim+resolve round trip / cat to a file / createArtifact+PUT of the same bytes\n", opts.Rounds)
	fmt.Fprintln(w, "\nevery repeat:")
	for _, sc := range scens {
		for _, who := range append([]string{"floor"}, workers...) {
			for i, s := range r.m[sc.name][who] {
				fmt.Fprintf(w, "  %-14s %-15s #%d %s\n", sc.name, who, i+1, s.String(sc))
			}
		}
	}
	return nil
}

// String renders a sample for the progress and repeat lines.
func (s sample) String(sc *scenario) string {
	if s.err != nil {
		return "ERROR " + s.err.Error()
	}
	wall := fmt.Sprintf("wall %.3fs", s.wall.Seconds())
	if sc.perTask {
		wall += fmt.Sprintf(" (%.1f ms/task)", float64(s.wall)/float64(time.Millisecond)/float64(sc.tasks))
	}
	if s.wallOnly {
		return wall
	}
	return fmt.Sprintf("%s cpu %.2fs peakRSS %.1fMB idleRSS %.1fMB disk %.1fMB",
		wall, s.cpu.Seconds(), float64(s.peak)/(1<<20), float64(s.idleRSS)/(1<<20), float64(s.disk)/(1<<20))
}
