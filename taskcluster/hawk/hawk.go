// Package hawk implements the Hawk HTTP authentication scheme as Taskcluster
// uses it, for both sides of a request: clients sign requests (Authorization
// header) and URLs (bewit); servers parse a header or bewit and recompute the
// expected MAC to verify it.
//
// Only the sha256 algorithm is supported, which is the only one Taskcluster
// uses. The wire formats follow the Hawk specification (hueniverse/hawk,
// version 1 of the normalized string): for a header the MAC is
//
//	base64(HMAC-SHA256(key, "hawk.1.header\n" + ts + "\n" + nonce + "\n" +
//	    METHOD + "\n" + resource + "\n" + lower(host) + "\n" + port + "\n" +
//	    hash + "\n" + escaped(ext) + "\n" [+ app + "\n" + dlg + "\n"]))
//
// where resource is the request target (path and query, as sent on the
// wire), ts is in Unix seconds, and hash is the optional payload hash
// (PayloadHash). A bewit uses "hawk.1.bewit", the expiry as ts, an empty
// nonce, method GET and no hash.
//
// On top of the generic scheme, taskcluster.go holds what Taskcluster adds:
// signing with Taskcluster credentials (tcwire.Credentials: SignHeader,
// SignURL), the ext field carrying a temporary-credentials certificate and
// authorizedScopes, certificate creation and verification, and a request
// authenticator for servers (scopes checked with tcwire's satisfaction
// rule).
package hawk

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Sentinel errors returned (wrapped) by parsing and verification; callers
// branch on them with errors.Is.
var (
	// ErrMissingAuth means the request carries neither a Hawk Authorization
	// header nor a bewit.
	ErrMissingAuth = errors.New("no hawk authorization")
	// ErrMalformed means the Authorization header or bewit could not be
	// parsed.
	ErrMalformed = errors.New("malformed hawk authorization")
	// ErrBadMAC means the MAC does not match the one computed with the
	// client's key.
	ErrBadMAC = errors.New("hawk mac mismatch")
	// ErrBadPayloadHash means the payload hash in the header does not match
	// the request body.
	ErrBadPayloadHash = errors.New("hawk payload hash mismatch")
	// ErrStaleTimestamp means the header's ts is outside the allowed clock
	// skew.
	ErrStaleTimestamp = errors.New("hawk timestamp outside allowed skew")
	// ErrBewitExpired means a bewit's expiry has passed.
	ErrBewitExpired = errors.New("hawk bewit expired")
)

// Request is what Hawk signs of an HTTP request.
type Request struct {
	// Method is the HTTP method; it is upper-cased when signing.
	Method string
	// Resource is the request target: the escaped path plus "?" and the raw
	// query when there is one, exactly as sent on the request line.
	Resource string
	// Host is the host name without port; it is lower-cased when signing.
	Host string
	// Port is the TCP port: explicit in the URL or Host header, else 443 for
	// https and 80 for http.
	Port int
}

// RequestFromURL builds the signed view of a client request to u. The
// resource is u.RequestURI(), which is also what net/http sends on the
// request line.
func RequestFromURL(method string, u *url.URL) Request {
	return Request{
		Method:   method,
		Resource: u.RequestURI(),
		Host:     u.Hostname(),
		Port:     portFor(u.Port(), u.Scheme),
	}
}

// RequestFromHTTP builds the signed view of a request received by a server.
// The host and port come from the Host header (defaulting the port from
// whether the connection is TLS); the resource is the raw request target.
// Servers behind a proxy that rewrites the Host header must build the
// Request themselves.
func RequestFromHTTP(r *http.Request) Request {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	host, port := r.Host, ""
	if h, p, err := net.SplitHostPort(r.Host); err == nil {
		host, port = h, p
	}
	resource := r.RequestURI
	if resource == "" || strings.Contains(resource, "://") {
		resource = r.URL.RequestURI()
	}
	return Request{Method: r.Method, Resource: resource, Host: host, Port: portFor(port, scheme)}
}

func portFor(port, scheme string) int {
	if p, err := strconv.Atoi(port); err == nil && port != "" {
		return p
	}
	if strings.EqualFold(scheme, "https") {
		return 443
	}
	return 80
}

// Header is a Hawk request Authorization header
// (`Hawk id="...", ts="...", nonce="...", hash="...", ext="...", mac="..."`).
type Header struct {
	// ID is the client id (Taskcluster clientId).
	ID string
	// TS is the client's clock in Unix seconds.
	TS int64
	// Nonce is a random string unique per request.
	Nonce string
	// Hash is the optional payload hash (PayloadHash), base64.
	Hash string
	// Ext is application data; Taskcluster puts base64 JSON there (Ext).
	Ext string
	// MAC is the base64 HMAC-SHA256 of the normalized string.
	MAC string
	// App and Dlg are Oz application fields; Taskcluster does not use them
	// but they are signed when present.
	App, Dlg string
}

// NewHeader returns a header for req signed with key. An empty nonce is
// replaced by a random one; payloadHash and ext may be empty.
func NewHeader(id, key string, req Request, ts time.Time, nonce, payloadHash, ext string) *Header {
	if nonce == "" {
		nonce = NewNonce()
	}
	h := &Header{ID: id, TS: ts.Unix(), Nonce: nonce, Hash: payloadHash, Ext: ext}
	h.MAC = h.ExpectedMAC(key, req)
	return h
}

// NewNonce returns a random nonce of 8 URL-safe characters.
func NewNonce() string {
	var b [6]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms.
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// String renders the header as an Authorization header value, with
// attributes in the order the reference implementation uses.
func (h *Header) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, `Hawk id="%s", ts="%d", nonce="%s"`, h.ID, h.TS, h.Nonce)
	if h.Hash != "" {
		fmt.Fprintf(&b, `, hash="%s"`, h.Hash)
	}
	if h.Ext != "" {
		fmt.Fprintf(&b, `, ext="%s"`, h.Ext)
	}
	fmt.Fprintf(&b, `, mac="%s"`, h.MAC)
	if h.App != "" {
		fmt.Fprintf(&b, `, app="%s", dlg="%s"`, h.App, h.Dlg)
	}
	return b.String()
}

// ExpectedMAC computes the MAC the header must carry for req under key. The
// header's own MAC field is ignored.
func (h *Header) ExpectedMAC(key string, req Request) string {
	return mac(key, "header", h.TS, h.Nonce, req, h.Hash, h.Ext, h.App, h.Dlg)
}

// Verify checks the header's MAC against key in constant time, returning an
// error wrapping ErrBadMAC on mismatch. It does not check the timestamp (see
// CheckTimestamp) nor the payload hash (see VerifyPayloadHash).
func (h *Header) Verify(key string, req Request) error {
	if !equalMAC(h.MAC, h.ExpectedMAC(key, req)) {
		return fmt.Errorf("verifying header for client %q: %w", h.ID, ErrBadMAC)
	}
	return nil
}

// VerifyPayloadHash checks the header's hash attribute against the request
// body and content type. A header without a hash passes: Hawk makes payload
// validation optional for the client.
func (h *Header) VerifyPayloadHash(contentType string, body []byte) error {
	if h.Hash == "" {
		return nil
	}
	if !equalMAC(h.Hash, PayloadHash(contentType, body)) {
		return ErrBadPayloadHash
	}
	return nil
}

// CheckTimestamp returns an error wrapping ErrStaleTimestamp when ts (Unix
// seconds) differs from now by more than skew in either direction.
func CheckTimestamp(ts int64, now time.Time, skew time.Duration) error {
	d := now.Sub(time.Unix(ts, 0))
	if d > skew || d < -skew {
		return fmt.Errorf("%w: ts %d is %s away from the server clock (allowed %s)", ErrStaleTimestamp, ts, d.Round(time.Second), skew)
	}
	return nil
}

// ParseHeader parses an Authorization header value of scheme Hawk. Errors
// wrap ErrMissingAuth (another scheme or empty) or ErrMalformed.
func ParseHeader(value string) (*Header, error) {
	value = strings.TrimSpace(value)
	scheme, rest, _ := strings.Cut(value, " ")
	if !strings.EqualFold(scheme, "Hawk") {
		return nil, ErrMissingAuth
	}
	attrs := map[string]string{}
	rest = strings.TrimSpace(rest)
	for rest != "" {
		name, after, ok := strings.Cut(rest, "=")
		name = strings.TrimSpace(name)
		after = strings.TrimLeft(after, " ")
		if !ok || name == "" || !strings.HasPrefix(after, `"`) {
			return nil, fmt.Errorf("%w: bad attribute syntax near %q", ErrMalformed, rest)
		}
		end := strings.IndexByte(after[1:], '"')
		if end < 0 {
			return nil, fmt.Errorf("%w: unterminated value of %q", ErrMalformed, name)
		}
		val := after[1 : 1+end]
		if strings.ContainsRune(val, '\\') {
			return nil, fmt.Errorf("%w: backslash in value of %q", ErrMalformed, name)
		}
		if _, dup := attrs[name]; dup {
			return nil, fmt.Errorf("%w: duplicate attribute %q", ErrMalformed, name)
		}
		attrs[name] = val
		rest = strings.TrimLeft(after[2+end:], " ")
		if rest != "" {
			if rest[0] != ',' {
				return nil, fmt.Errorf("%w: expected comma after %q", ErrMalformed, name)
			}
			rest = strings.TrimLeft(rest[1:], " ")
		}
	}
	h := &Header{}
	for name, val := range attrs {
		switch name {
		case "id":
			h.ID = val
		case "ts":
			ts, err := strconv.ParseInt(val, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%w: ts %q is not an integer", ErrMalformed, val)
			}
			h.TS = ts
		case "nonce":
			h.Nonce = val
		case "hash":
			h.Hash = val
		case "ext":
			h.Ext = val
		case "mac":
			h.MAC = val
		case "app":
			h.App = val
		case "dlg":
			h.Dlg = val
		default:
			return nil, fmt.Errorf("%w: unknown attribute %q", ErrMalformed, name)
		}
	}
	for _, req := range []string{"id", "ts", "nonce", "mac"} {
		if _, ok := attrs[req]; !ok {
			return nil, fmt.Errorf("%w: missing attribute %q", ErrMalformed, req)
		}
	}
	return h, nil
}

// PayloadHash returns the Hawk payload hash of body:
// base64(SHA256("hawk.1.payload\n" + mime + "\n" + body + "\n")), where mime
// is contentType without parameters, trimmed and lower-cased.
func PayloadHash(contentType string, body []byte) string {
	h := NewPayloadHasher(contentType)
	h.Write(body)
	return h.Sum()
}

// PayloadHasher computes a payload hash over a streamed body.
type PayloadHasher struct{ h hash.Hash }

// NewPayloadHasher starts a payload hash for a body of the given content
// type; write the body to it, then call Sum.
func NewPayloadHasher(contentType string) *PayloadHasher {
	mime, _, _ := strings.Cut(contentType, ";")
	h := sha256.New()
	h.Write([]byte("hawk.1.payload\n" + strings.ToLower(strings.TrimSpace(mime)) + "\n"))
	return &PayloadHasher{h: h}
}

// Write adds body bytes; it never fails.
func (p *PayloadHasher) Write(b []byte) (int, error) { return p.h.Write(b) }

// Sum finishes the hash and returns it base64 encoded.
func (p *PayloadHasher) Sum() string {
	p.h.Write([]byte("\n"))
	return base64.StdEncoding.EncodeToString(p.h.Sum(nil))
}

// Bewit is a parsed bewit: the credentials Hawk puts in a URL's "bewit"
// query parameter to authorise a GET without headers.
type Bewit struct {
	ID string
	// Exp is the expiry, Unix seconds.
	Exp int64
	MAC string
	Ext string
}

// NewBewit signs u for GET until exp and returns the bewit value (URL-safe
// base64 without padding of id\exp\mac\ext). u must not already carry a
// bewit parameter.
func NewBewit(id, key string, u *url.URL, exp time.Time, ext string) string {
	b := Bewit{ID: id, Exp: exp.Unix(), Ext: ext}
	b.MAC = b.ExpectedMAC(key, RequestFromURL(http.MethodGet, u))
	return b.String()
}

// String encodes the bewit for the "bewit" query parameter.
func (b *Bewit) String() string {
	raw := b.ID + `\` + strconv.FormatInt(b.Exp, 10) + `\` + b.MAC + `\` + b.Ext
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

// ExpectedMAC computes the bewit MAC for req (method forced to GET) under
// key; req.Resource must be the URL without its bewit parameter
// (see StripBewit).
func (b *Bewit) ExpectedMAC(key string, req Request) string {
	req.Method = http.MethodGet
	return mac(key, "bewit", b.Exp, "", req, "", b.Ext, "", "")
}

// Verify checks the bewit MAC in constant time and that it has not expired
// at now.
func (b *Bewit) Verify(key string, req Request, now time.Time) error {
	if !equalMAC(b.MAC, b.ExpectedMAC(key, req)) {
		return fmt.Errorf("verifying bewit for client %q: %w", b.ID, ErrBadMAC)
	}
	if now.Unix() > b.Exp {
		return fmt.Errorf("bewit for client %q expired at %s: %w", b.ID, time.Unix(b.Exp, 0).UTC().Format(time.RFC3339), ErrBewitExpired)
	}
	return nil
}

// ParseBewit decodes a bewit query parameter value.
func ParseBewit(value string) (*Bewit, error) {
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(value, "="))
	if err != nil {
		return nil, fmt.Errorf("%w: bewit is not base64url: %v", ErrMalformed, err)
	}
	parts := strings.Split(string(raw), `\`)
	if len(parts) != 4 || parts[0] == "" || parts[2] == "" {
		return nil, fmt.Errorf("%w: bewit must have 4 parts id\\exp\\mac\\ext", ErrMalformed)
	}
	exp, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil {
		return nil, fmt.Errorf("%w: bewit expiry %q is not an integer", ErrMalformed, parts[1])
	}
	return &Bewit{ID: parts[0], Exp: exp, MAC: parts[2], Ext: parts[3]}, nil
}

// StripBewit removes the bewit parameter from a request target (path and
// raw query) the way the reference server does before recomputing the MAC,
// and returns the bewit value and the remaining resource. found is false
// when there is no bewit parameter.
func StripBewit(resource string) (bewit, rest string, found bool) {
	path, query, hasQuery := strings.Cut(resource, "?")
	if !hasQuery {
		return "", resource, false
	}
	params := strings.Split(query, "&")
	kept := params[:0]
	for _, p := range params {
		if v, ok := strings.CutPrefix(p, "bewit="); ok && !found {
			bewit, found = v, true
			continue
		}
		kept = append(kept, p)
	}
	if !found {
		return "", resource, false
	}
	if len(kept) == 0 {
		return bewit, path, true
	}
	return bewit, path + "?" + strings.Join(kept, "&"), true
}

func mac(key, kind string, ts int64, nonce string, req Request, payloadHash, ext, app, dlg string) string {
	var b strings.Builder
	b.WriteString("hawk.1." + kind + "\n")
	b.WriteString(strconv.FormatInt(ts, 10) + "\n")
	b.WriteString(nonce + "\n")
	b.WriteString(strings.ToUpper(req.Method) + "\n")
	b.WriteString(req.Resource + "\n")
	b.WriteString(strings.ToLower(req.Host) + "\n")
	b.WriteString(strconv.Itoa(req.Port) + "\n")
	b.WriteString(payloadHash + "\n")
	b.WriteString(strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(ext) + "\n")
	if app != "" {
		b.WriteString(app + "\n" + dlg + "\n")
	}
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(b.String()))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func equalMAC(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
