package taskcluster

import (
	"context"
	"net/http"
)

// Auth is the subset of the Auth service a worker uses (references/auth/v1
// api.json), called with the Client's credentials.
type Auth struct{ c *Client }

// Auth returns the Auth service through c.
func (c *Client) Auth() *Auth { return &Auth{c: c} }

// ExpandScopes returns scopes with every scope their roles (`assume:`)
// imply (auth.expandScopes, POST /scopes/expand; the caller needs scope
// auth:expand-scopes). It implements task.ScopeExpander.
func (a *Auth) ExpandScopes(ctx context.Context, scopes []string) ([]string, error) {
	in := struct {
		Scopes []string `json:"scopes"`
	}{Scopes: scopes}
	if in.Scopes == nil {
		in.Scopes = []string{}
	}
	var out struct {
		Scopes []string `json:"scopes"`
	}
	if err := a.c.Call(ctx, "auth", "auth.expandScopes", http.MethodPost, "/scopes/expand", nil, in, &out); err != nil {
		return nil, err
	}
	if out.Scopes == nil {
		out.Scopes = []string{}
	}
	return out.Scopes, nil
}
