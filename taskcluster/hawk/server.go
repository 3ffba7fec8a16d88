package hawk

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/workergen/workergen/taskcluster/tcwire"
)

// Sentinel errors of Authenticator.
var (
	// ErrUnknownClient means the lookup knows no client with that clientId.
	// Lookup functions should return it (wrapped) for unknown clients.
	ErrUnknownClient = errors.New("unknown clientId")
	// ErrScopes means a certificate's scopes are not satisfied by its
	// issuer's, authorizedScopes are not satisfied by the credentials'
	// scopes, or an issuer may not name the temporary client.
	ErrScopes = errors.New("insufficient scopes for credentials")
)

// DefaultTimestampSkew is the clock skew Taskcluster's auth service allows
// for a Hawk header's ts.
const DefaultTimestampSkew = 15 * time.Minute

// Client is a permanent client as a server knows it.
type Client struct {
	AccessToken string
	// Scopes are the client's (already expanded) scopes.
	Scopes []string
}

// Identity is the outcome of a successful authentication.
type Identity struct {
	// ClientID is the clientId that signed the request (the temporary
	// clientId for named temporary credentials).
	ClientID string
	// Issuer is the permanent client that issued the temporary credentials,
	// "" for permanent credentials.
	Issuer string
	// Scopes are the request's effective scopes: the client's scopes, the
	// certificate's for temporary credentials, or authorizedScopes when
	// given.
	Scopes []string
	// Header is the parsed Authorization header, nil for a bewit. Servers
	// that want payload validation call Header.VerifyPayloadHash.
	Header *Header
	// Expires is when temporary credentials stop being valid, zero for
	// permanent ones.
	Expires time.Time
}

// Authenticator verifies Taskcluster Hawk requests on the server side:
// header or bewit MAC, timestamp skew, temporary-credentials certificates
// (signature, validity, issuer's scopes, the issuer's right to name the
// client via auth:create-client:<clientId>) and authorizedScopes. It keeps
// no nonce cache, so it does not detect replays within the skew window.
type Authenticator struct {
	// Lookup returns a permanent client; it returns an error wrapping
	// ErrUnknownClient for unknown clientIds.
	Lookup func(ctx context.Context, clientID string) (Client, error)
	// Now is the server clock; nil means time.Now.
	Now func() time.Time
	// Skew is the allowed header timestamp skew; zero means
	// DefaultTimestampSkew.
	Skew time.Duration
}

// Authenticate verifies r's Authorization header, or its bewit query
// parameter when there is no header (GET and HEAD only). Errors wrap ErrMissingAuth,
// ErrMalformed, ErrUnknownClient, ErrBadMAC, ErrStaleTimestamp,
// ErrBewitExpired, ErrBadCertificate, ErrCertificateExpired or ErrScopes,
// or whatever Lookup returned.
func (a *Authenticator) Authenticate(ctx context.Context, r *http.Request) (*Identity, error) {
	req := RequestFromHTTP(r)
	if auth := r.Header.Get("Authorization"); auth != "" {
		return a.AuthenticateHeader(ctx, auth, req)
	}
	bewit, rest, found := StripBewit(req.Resource)
	if !found {
		return nil, ErrMissingAuth
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return nil, fmt.Errorf("%w: a bewit only authorises GET and HEAD, not %s", ErrMalformed, r.Method)
	}
	req.Resource = rest
	return a.AuthenticateBewit(ctx, bewit, req)
}

// AuthenticateHeader verifies an Authorization header value for req.
func (a *Authenticator) AuthenticateHeader(ctx context.Context, authorization string, req Request) (*Identity, error) {
	h, err := ParseHeader(authorization)
	if err != nil {
		return nil, err
	}
	if err := CheckTimestamp(h.TS, a.now(), a.skew()); err != nil {
		return nil, err
	}
	id, key, err := a.resolve(ctx, h.ID, h.Ext)
	if err != nil {
		return nil, err
	}
	if err := h.Verify(key, req); err != nil {
		return nil, err
	}
	id.Header = h
	return id, nil
}

// AuthenticateBewit verifies a bewit value for req, whose Resource must no
// longer contain the bewit parameter (see StripBewit).
func (a *Authenticator) AuthenticateBewit(ctx context.Context, bewit string, req Request) (*Identity, error) {
	b, err := ParseBewit(bewit)
	if err != nil {
		return nil, err
	}
	id, key, err := a.resolve(ctx, b.ID, b.Ext)
	if err != nil {
		return nil, err
	}
	if err := b.Verify(key, req, a.now()); err != nil {
		return nil, err
	}
	return id, nil
}

// resolve finds the signing key and effective scopes for clientID with the
// given ext.
func (a *Authenticator) resolve(ctx context.Context, clientID, extAttr string) (*Identity, string, error) {
	ext, err := ParseExt(extAttr)
	if err != nil {
		return nil, "", err
	}
	id := &Identity{ClientID: clientID}
	var key string
	if ext.Certificate != nil {
		cert, err := ParseCertificate(ext.Certificate)
		if err != nil {
			return nil, "", err
		}
		issuerID := cert.IssuerFor(clientID)
		issuer, err := a.lookup(ctx, issuerID)
		if err != nil {
			return nil, "", err
		}
		if err := cert.Verify(issuer.AccessToken, clientID, a.now()); err != nil {
			return nil, "", fmt.Errorf("credentials of %q: %w", clientID, err)
		}
		if cert.Issuer != "" && !tcwire.ScopeSatisfied(issuer.Scopes, "auth:create-client:"+clientID) {
			return nil, "", fmt.Errorf("%w: issuer %q lacks auth:create-client:%s", ErrScopes, issuerID, clientID)
		}
		if !tcwire.HasScopes(issuer.Scopes, cert.Scopes...) {
			return nil, "", fmt.Errorf("%w: issuer %q does not satisfy the certificate's scopes", ErrScopes, issuerID)
		}
		key = TemporaryAccessToken(issuer.AccessToken, cert.Seed)
		id.Scopes = cert.Scopes
		id.Issuer = cert.Issuer
		if id.Issuer == "" {
			id.Issuer = clientID
		}
		id.Expires = time.UnixMilli(cert.Expiry)
	} else {
		c, err := a.lookup(ctx, clientID)
		if err != nil {
			return nil, "", err
		}
		key, id.Scopes = c.AccessToken, c.Scopes
	}
	if ext.AuthorizedScopes != nil {
		if !tcwire.HasScopes(id.Scopes, *ext.AuthorizedScopes...) {
			return nil, "", fmt.Errorf("%w: authorizedScopes exceed the scopes of %q", ErrScopes, clientID)
		}
		id.Scopes = *ext.AuthorizedScopes
	}
	return id, key, nil
}

func (a *Authenticator) lookup(ctx context.Context, clientID string) (Client, error) {
	if a.Lookup == nil {
		return Client{}, fmt.Errorf("client %q: %w", clientID, ErrUnknownClient)
	}
	c, err := a.Lookup(ctx, clientID)
	if err != nil {
		return Client{}, fmt.Errorf("looking up client %q: %w", clientID, err)
	}
	return c, nil
}

func (a *Authenticator) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

func (a *Authenticator) skew() time.Duration {
	if a.Skew > 0 {
		return a.Skew
	}
	return DefaultTimestampSkew
}
