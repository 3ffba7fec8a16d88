package gwconfig

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/url"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/workergen/workergen/internal/suggest"
)

// Errors of Load and Parse; generic-worker exits 64 for the first and 73
// for the second.
var (
	// ErrLoad: the file cannot be read, is not JSON, or is not an object.
	ErrLoad = errors.New("cannot load generic-worker config")
	// ErrInvalid: a key is unknown, has a value of the wrong type or out of
	// range, or a required key is missing.
	ErrInvalid = errors.New("invalid generic-worker config")
)

// Location is where the worker runs, as worker-runner writes it from the
// provider's metadata: the keys chain of trust signs and tasks may see. An
// empty field was not given.
type Location struct {
	PublicIP         string `json:"publicIP,omitempty"`
	PrivateIP        string `json:"privateIP,omitempty"`
	InstanceType     string `json:"instanceType,omitempty"`
	InstanceID       string `json:"instanceID,omitempty"`
	Region           string `json:"region,omitempty"`
	AvailabilityZone string `json:"availabilityZone,omitempty"`
	// WorkerLocation is the TASKCLUSTER_WORKER_LOCATION of tasks: the text
	// of a JSON object such as {"cloud":"aws","region":"us-east-1"}, as
	// worker-runner writes it.
	WorkerLocation string `json:"workerLocation,omitempty"`
	// WorkerTypeMetadata is arbitrary JSON about the worker's setup (with
	// worker-runner, the provider's metadata is merged into it).
	WorkerTypeMetadata map[string]any `json:"workerTypeMetadata,omitempty"`
}

// Options say what the binary loading the file has.
type Options struct {
	// Plugins are the profile's plugin names. A key whose target is
	// plugins.<name>.… for a plugin not listed has no meaning for this
	// binary and is warned about like the keys without a target.
	Plugins []string
	// Native are workergen's own top-level config keys (e.g. "engine",
	// "plugins", "reclaimMargin"). Such a key in the file, when it is not
	// also a generic-worker key, is copied into the document unchanged, so
	// worker-runner's workerConfig can carry workergen settings too; a
	// generic-worker key setting the same field is then an error.
	Native []string
	// Engine is the profile's engine kind ("native", "container"). Keys
	// whose target is engine.… (the resource monitor's, for example) are
	// set for the native engine and warned about for any other.
	Engine string
}

// Config is a loaded generic-worker config file.
type Config struct {
	// Document is the workergen config the file means, in workergen's own
	// shape (rootUrl, credentials, workerPoolId, plugins.mounts.cachesDir,
	// …), with only the fields the file sets: merge it over the profile's
	// defaults and validate it as any workergen config. Integers are int.
	Document map[string]any
	// Location holds the keys describing where the worker runs.
	Location Location
	// Ignored are the keys of the file (as the file spells them, sorted)
	// that generic-worker knows but that have no meaning for this binary.
	Ignored []string
	notes   map[string]string
}

// Warnings returns one line per ignored key, naming it and saying why.
func (c *Config) Warnings() []string {
	out := make([]string, 0, len(c.Ignored))
	for _, name := range c.Ignored {
		out = append(out, fmt.Sprintf("generic-worker config key %q is ignored: %s", name, c.notes[name]))
	}
	return out
}

// LogWarnings logs each of Warnings once at level Warn.
func (c *Config) LogWarnings(logger *slog.Logger) {
	for _, w := range c.Warnings() {
		logger.Warn(w)
	}
}

// Load reads and parses the file at path (see Parse); errors name the
// file.
func Load(path string, opts Options) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrLoad, err)
	}
	c, err := Parse(data, opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Parse reads a generic-worker config: a JSON object of the keys in Keys,
// as worker-runner writes it for `implementation: generic-worker`. Keys
// match case-insensitively, as in generic-worker. An empty string counts
// as absent. Every problem is reported, each naming its key; errors wrap
// ErrLoad or ErrInvalid.
func Parse(data []byte, opts Options) (*Config, error) {
	raw, err := decodeObject(data)
	if err != nil {
		return nil, err
	}
	p := parser{
		opts: opts, cfg: &Config{Document: map[string]any{}, notes: map[string]string{}},
		byKey: map[string]string{}, vals: map[string]any{}, invalid: map[string]bool{},
	}
	p.copyNative(raw)
	for _, name := range slices.Sorted(maps.Keys(raw)) {
		p.key(name, raw[name])
	}
	p.pool()
	p.liveLog()
	p.cotEnvironment()
	p.required()
	if len(p.errs) > 0 {
		sort.Strings(p.errs)
		return nil, fmt.Errorf("%w:\n  %s", ErrInvalid, strings.Join(p.errs, "\n  "))
	}
	sort.Strings(p.cfg.Ignored)
	return p.cfg, nil
}

// decodeObject decodes data as a JSON object, numbers kept as json.Number.
func decodeObject(data []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	err := dec.Decode(&v)
	if err == nil && dec.More() {
		err = errors.New("more than one JSON value")
	}
	if err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			return nil, fmt.Errorf("%w: not valid JSON at %s: %w", ErrLoad, position(data, syn.Offset), err)
		}
		return nil, fmt.Errorf("%w: not valid JSON: %w", ErrLoad, err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: the config must be a JSON object of settings", ErrLoad)
	}
	return m, nil
}

var keyBefore = regexp.MustCompile(`"([^"\\]+)"\s*:`)

// position describes offset in data as line and column, and names the last
// key before it.
func position(data []byte, offset int64) string {
	before := data[:min(int(offset), len(data))]
	line := bytes.Count(before, []byte("\n")) + 1
	col := max(len(before)-bytes.LastIndexByte(before, '\n')-1, 1)
	s := fmt.Sprintf("line %d, column %d", line, col)
	if ms := keyBefore.FindAllSubmatch(before, -1); len(ms) > 0 {
		s += fmt.Sprintf(" (after key %q)", ms[len(ms)-1][1])
	}
	return s
}

type parser struct {
	opts    Options
	cfg     *Config
	errs    []string
	byKey   map[string]string // canonical key name -> name as in the file
	vals    map[string]any    // Key.Name -> checked value
	invalid map[string]bool   // Key.Name -> reported as invalid
}

func (p *parser) errorf(name, format string, args ...any) {
	p.errs = append(p.errs, fmt.Sprintf("key %q: ", name)+fmt.Sprintf(format, args...))
}

func (p *parser) copyNative(raw map[string]any) {
	for _, name := range p.opts.Native {
		v, ok := raw[name]
		if !ok {
			continue
		}
		if _, isGW := keyByName(name); isGW {
			continue
		}
		p.cfg.Document[name] = normalize(v)
		delete(raw, name)
	}
}

// key checks one key of the file and records what it means.
func (p *parser) key(name string, v any) {
	k, ok := keyByName(name)
	if !ok {
		cands := make([]string, 0, len(Keys)+len(p.opts.Native))
		for _, k := range Keys {
			cands = append(cands, k.Name)
		}
		cands = append(cands, p.opts.Native...)
		msg := fmt.Sprintf("key %q: not a generic-worker config key", name)
		if s := suggest.Closest(name, cands); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		}
		p.errs = append(p.errs, msg)
		return
	}
	canon := strings.ToLower(k.Name)
	if prev, dup := p.byKey[canon]; dup {
		p.errorf(name, "set twice (also as %q)", prev)
		return
	}
	p.byKey[canon] = name
	val, ok := p.check(name, k, v)
	if !ok {
		p.invalid[k.Name] = true
		return
	}
	if val == nil {
		return
	}
	p.vals[k.Name] = val
	p.apply(name, k, val)
}

// check returns v converted for k (string, bool, int, map) or reports why
// it cannot be; a nil value with true is an empty string (absent).
func (p *parser) check(name string, k Key, v any) (any, bool) {
	bad := func(why string) (any, bool) {
		p.errorf(name, "want %s, got %s", k.Kind, why)
		return nil, false
	}
	switch k.Kind {
	case String, IP, URL:
		s, ok := v.(string)
		if !ok {
			return bad(describe(v))
		}
		if s == "" {
			return nil, true
		}
		if k.Kind == IP && net.ParseIP(s) == nil {
			return bad(fmt.Sprintf("%q", s))
		}
		if k.Kind == URL {
			if u, err := url.Parse(s); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return bad(fmt.Sprintf("%q", s))
			}
		}
		if re := patterns[k.Name]; re != nil && !re.MatchString(s) {
			p.errorf(name, "%q does not match %s", s, re)
			return nil, false
		}
		return s, true
	case Bool:
		b, ok := v.(bool)
		if !ok {
			return bad(describe(v))
		}
		return b, true
	case Int:
		n, ok := v.(json.Number)
		if !ok {
			return bad(describe(v))
		}
		i, err := n.Int64()
		if err != nil {
			return bad(n.String())
		}
		if i < k.Min || i > k.Max {
			p.errorf(name, "%d is out of range [%d, %d]", i, k.Min, k.Max)
			return nil, false
		}
		return int(i), true
	case Object:
		m, ok := v.(map[string]any)
		if !ok {
			return bad(describe(v))
		}
		return normalize(m), true
	}
	return normalize(v), true
}

// patterns are the Queue's identifier patterns for the keys that form the
// worker's identity (queue/v1 claim-work-request.json, task.json).
var patterns = map[string]*regexp.Regexp{
	"provisionerId": regexp.MustCompile(`^[a-zA-Z0-9-_]{1,38}$`),
	"workerType":    regexp.MustCompile(`^[a-z]([-a-z0-9]{0,36}[a-z0-9])?$`),
	"workerGroup":   regexp.MustCompile(`^[a-zA-Z0-9-_]{1,38}$`),
	"workerId":      regexp.MustCompile(`^[a-zA-Z0-9-_]{1,38}$`),
	"workerPoolId":  regexp.MustCompile(`^[a-zA-Z0-9-_]{1,38}/[a-z]([-a-z0-9]{0,36}[a-z0-9])?$`),
}

func describe(v any) string {
	switch x := v.(type) {
	case string:
		return fmt.Sprintf("the string %q", x)
	case bool:
		return fmt.Sprintf("the boolean %t", x)
	case json.Number:
		return "the number " + x.String()
	case nil:
		return "null"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// normalize turns json.Number into int (or float64) throughout v.
func normalize(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return int(i)
		}
		f, _ := x.Float64()
		return f
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = normalize(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalize(e)
		}
		return out
	}
	return v
}
