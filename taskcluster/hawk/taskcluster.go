package hawk

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/workergen/workergen/taskcluster/tcwire"
)

// Sentinel errors for Taskcluster credentials.
var (
	// ErrBadCertificate means a temporary-credentials certificate is
	// malformed, has a wrong signature, or violates Taskcluster's rules
	// (version, seed length, validity window, issuer).
	ErrBadCertificate = errors.New("invalid temporary credentials certificate")
	// ErrCertificateExpired means the certificate's validity window does not
	// contain the current time.
	ErrCertificateExpired = errors.New("temporary credentials certificate not valid now")
	// ErrMissingCredentials means a clientId or accessToken is empty.
	ErrMissingCredentials = errors.New("missing taskcluster credentials")
)

// Limits Taskcluster's auth service applies to temporary credentials.
const (
	// MaxTemporaryCredentialsDuration is the longest expiry-start allowed.
	MaxTemporaryCredentialsDuration = 31 * 24 * time.Hour
	// CertificateClockSkew is how far start may be in the future and expiry
	// in the past when a certificate is checked.
	CertificateClockSkew = 5 * time.Minute
	// seedLength is the length of a certificate seed: two slugids.
	seedLength = 44
)

// Credentials are Taskcluster credentials (see tcwire.Credentials); this
// file signs with them (SignHeader, SignURL) and issues temporary ones
// (CreateTemporaryCredentials).
type Credentials = tcwire.Credentials

// Ext is the decoded Hawk ext attribute Taskcluster uses:
// base64(JSON {"certificate": <certificate object>, "authorizedScopes": [...]}),
// both members optional.
type Ext struct {
	// Certificate is the certificate as a JSON object, nil when absent.
	Certificate json.RawMessage `json:"certificate,omitempty"`
	// AuthorizedScopes is nil when absent.
	AuthorizedScopes *[]string `json:"authorizedScopes,omitempty"`
}

// CredentialsExt returns the ext attribute for c, or "" when c has neither
// a certificate nor authorizedScopes.
func CredentialsExt(c Credentials) (string, error) {
	var ext Ext
	if c.Certificate != "" {
		if !json.Valid([]byte(c.Certificate)) || !strings.HasPrefix(strings.TrimSpace(c.Certificate), "{") {
			return "", fmt.Errorf("credentials for %q: %w: certificate is not a JSON object", c.ClientID, ErrBadCertificate)
		}
		ext.Certificate = json.RawMessage(c.Certificate)
	}
	if c.AuthorizedScopes != nil {
		scopes := c.AuthorizedScopes
		ext.AuthorizedScopes = &scopes
	}
	if ext.Certificate == nil && ext.AuthorizedScopes == nil {
		return "", nil
	}
	b, err := json.Marshal(ext)
	if err != nil {
		return "", fmt.Errorf("encoding hawk ext: %w", err)
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// ParseExt decodes a Taskcluster ext attribute. An empty string gives an
// empty Ext.
func ParseExt(ext string) (*Ext, error) {
	var e Ext
	if ext == "" {
		return &e, nil
	}
	raw, err := base64.StdEncoding.DecodeString(ext)
	if err != nil {
		return nil, fmt.Errorf("%w: ext is not base64: %v", ErrMalformed, err)
	}
	if err := json.Unmarshal(raw, &e); err != nil {
		return nil, fmt.Errorf("%w: ext is not a JSON object: %v", ErrMalformed, err)
	}
	return &e, nil
}

// SignHeader returns the Authorization header value for req signed with c
// at now, with the optional payloadHash (see PayloadHash) and the
// Taskcluster ext.
func SignHeader(c Credentials, req Request, now time.Time, payloadHash string) (string, error) {
	if c.ClientID == "" || c.AccessToken == "" {
		return "", ErrMissingCredentials
	}
	ext, err := CredentialsExt(c)
	if err != nil {
		return "", err
	}
	return NewHeader(c.ClientID, c.AccessToken, req, now, "", payloadHash, ext).String(), nil
}

// SignURL returns a copy of u with a bewit query parameter made with c,
// authorising a GET of u until now+ttl (Taskcluster's "signed URLs").
func SignURL(c Credentials, u *url.URL, now time.Time, ttl time.Duration) (*url.URL, error) {
	if c.ClientID == "" || c.AccessToken == "" {
		return nil, ErrMissingCredentials
	}
	ext, err := CredentialsExt(c)
	if err != nil {
		return nil, err
	}
	signed := *u
	bewit := NewBewit(c.ClientID, c.AccessToken, u, now.Add(ttl), ext)
	if signed.RawQuery == "" {
		signed.RawQuery = "bewit=" + bewit
	} else {
		signed.RawQuery += "&bewit=" + bewit
	}
	return &signed, nil
}

// Certificate is a Taskcluster temporary-credentials certificate. Start and
// Expiry are Unix milliseconds. Issuer is set only for named temporary
// credentials (whose clientId differs from the issuing client's).
type Certificate struct {
	Version   int      `json:"version"`
	Scopes    []string `json:"scopes"`
	Start     int64    `json:"start"`
	Expiry    int64    `json:"expiry"`
	Seed      string   `json:"seed"`
	Signature string   `json:"signature"`
	Issuer    string   `json:"issuer,omitempty"`
}

// ParseCertificate decodes the certificate JSON text (as found in
// Credentials.Certificate or an ext's certificate member).
func ParseCertificate(text []byte) (*Certificate, error) {
	var c Certificate
	if err := json.Unmarshal(text, &c); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadCertificate, err)
	}
	return &c, nil
}

// ExpectedSignature computes the certificate signature for the temporary
// clientId under the issuer's accessToken:
// base64(HMAC-SHA256(token, "version:1\n" [+ "clientId:<id>\nissuer:<issuer>\n"]
// + "seed:<seed>\nstart:<ms>\nexpiry:<ms>\nscopes:\n" + scopes joined by "\n")).
// The clientId and issuer lines appear only for named credentials.
func (c *Certificate) ExpectedSignature(issuerAccessToken, clientID string) string {
	lines := []string{"version:" + strconv.Itoa(c.Version)}
	if c.Issuer != "" {
		lines = append(lines, "clientId:"+clientID, "issuer:"+c.Issuer)
	}
	lines = append(lines,
		"seed:"+c.Seed,
		"start:"+strconv.FormatInt(c.Start, 10),
		"expiry:"+strconv.FormatInt(c.Expiry, 10),
		"scopes:")
	lines = append(lines, c.Scopes...)
	m := hmac.New(sha256.New, []byte(issuerAccessToken))
	m.Write([]byte(strings.Join(lines, "\n")))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// IssuerFor returns the clientId whose accessToken signed the certificate
// used by clientID: the issuer for named credentials, else clientID itself.
func (c *Certificate) IssuerFor(clientID string) string {
	if c.Issuer != "" {
		return c.Issuer
	}
	return clientID
}

// Check validates the certificate's shape and validity window at now, as
// Taskcluster's auth service does: version 1, a 44-character seed, start no
// later than now+CertificateClockSkew, expiry no earlier than
// now-CertificateClockSkew, at most MaxTemporaryCredentialsDuration long, and
// an issuer different from the temporary clientId. It does not check the
// signature (see Verify).
func (c *Certificate) Check(clientID string, now time.Time) error {
	switch {
	case c.Version != 1:
		return fmt.Errorf("%w: version %d, want 1", ErrBadCertificate, c.Version)
	case len(c.Seed) != seedLength:
		return fmt.Errorf("%w: seed must be %d characters", ErrBadCertificate, seedLength)
	case c.Expiry < c.Start:
		return fmt.Errorf("%w: expiry before start", ErrBadCertificate)
	case time.Duration(c.Expiry-c.Start)*time.Millisecond > MaxTemporaryCredentialsDuration:
		return fmt.Errorf("%w: valid for more than %s", ErrBadCertificate, MaxTemporaryCredentialsDuration)
	case c.Issuer != "" && c.Issuer == clientID:
		return fmt.Errorf("%w: issuer equals the temporary clientId %q", ErrBadCertificate, clientID)
	case c.Scopes == nil:
		return fmt.Errorf("%w: missing scopes", ErrBadCertificate)
	}
	nowMS := now.UnixMilli()
	if c.Start > nowMS+CertificateClockSkew.Milliseconds() {
		return fmt.Errorf("%w: starts at %s", ErrCertificateExpired, time.UnixMilli(c.Start).UTC().Format(time.RFC3339))
	}
	if c.Expiry < nowMS-CertificateClockSkew.Milliseconds() {
		return fmt.Errorf("%w: expired at %s", ErrCertificateExpired, time.UnixMilli(c.Expiry).UTC().Format(time.RFC3339))
	}
	return nil
}

// Verify checks the certificate (Check) and its signature under the
// issuer's accessToken for the temporary clientId.
func (c *Certificate) Verify(issuerAccessToken, clientID string, now time.Time) error {
	if err := c.Check(clientID, now); err != nil {
		return err
	}
	if !equalMAC(c.Signature, c.ExpectedSignature(issuerAccessToken, clientID)) {
		return fmt.Errorf("%w: signature mismatch (issuer %q)", ErrBadCertificate, c.IssuerFor(clientID))
	}
	return nil
}

// TemporaryAccessToken derives the accessToken of temporary credentials from
// the issuer's accessToken and the certificate seed:
// base64url-without-padding(HMAC-SHA256(issuerAccessToken, seed)).
func TemporaryAccessToken(issuerAccessToken, seed string) string {
	m := hmac.New(sha256.New, []byte(issuerAccessToken))
	m.Write([]byte(seed))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// NewSeed returns a random certificate seed: two slugids (44 characters).
func NewSeed() string {
	return slugID() + slugID()
}

// slugID returns a v4 UUID in URL-safe base64 without padding, with the
// first bit clear as Taskcluster's "nice" slugids have.
func slugID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms.
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	b[0] &= 0x7f
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// CreateTemporaryCredentials issues temporary credentials from permanent
// credentials c, valid from start to expiry with the given scopes. name is
// the temporary clientId for named credentials, or "" (or c.ClientID) for
// unnamed ones, which keep c's clientId. The seed is random. The returned
// credentials carry c's AuthorizedScopes.
func CreateTemporaryCredentials(c Credentials, name string, scopes []string, start, expiry time.Time) (Credentials, error) {
	return CreateTemporaryCredentialsWithSeed(c, name, scopes, start, expiry, NewSeed())
}

// CreateTemporaryCredentialsWithSeed is CreateTemporaryCredentials with a
// given seed (44 characters), for reproducible tests.
func CreateTemporaryCredentialsWithSeed(c Credentials, name string, scopes []string, start, expiry time.Time, seed string) (Credentials, error) {
	if c.ClientID == "" || c.AccessToken == "" {
		return Credentials{}, ErrMissingCredentials
	}
	if c.Certificate != "" {
		return Credentials{}, fmt.Errorf("creating temporary credentials from %q: %w: issuer credentials are themselves temporary", c.ClientID, ErrBadCertificate)
	}
	if expiry.Sub(start) > MaxTemporaryCredentialsDuration {
		return Credentials{}, fmt.Errorf("creating temporary credentials: %w: valid for more than %s", ErrBadCertificate, MaxTemporaryCredentialsDuration)
	}
	if len(seed) != seedLength {
		return Credentials{}, fmt.Errorf("creating temporary credentials: %w: seed must be %d characters", ErrBadCertificate, seedLength)
	}
	if scopes == nil {
		scopes = []string{}
	}
	cert := Certificate{
		Version: 1,
		Scopes:  scopes,
		Start:   start.UnixMilli(),
		Expiry:  expiry.UnixMilli(),
		Seed:    seed,
	}
	clientID := c.ClientID
	if name != "" && name != c.ClientID {
		cert.Issuer = c.ClientID
		clientID = name
	}
	cert.Signature = cert.ExpectedSignature(c.AccessToken, clientID)
	text, err := json.Marshal(cert)
	if err != nil {
		return Credentials{}, fmt.Errorf("encoding certificate: %w", err)
	}
	return Credentials{
		ClientID:         clientID,
		AccessToken:      TemporaryAccessToken(c.AccessToken, seed),
		Certificate:      string(text),
		AuthorizedScopes: c.AuthorizedScopes,
	}, nil
}
