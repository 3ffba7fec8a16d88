package tcwire

// Credentials are Taskcluster credentials: a clientId and accessToken,
// for temporary credentials the certificate (its JSON text, as
// claimWork and reclaimTask hand it out), and optionally authorizedScopes
// restricting requests signed with them to a subset of the client's scopes.
//
// AuthorizedScopes nil means "no restriction"; a non-nil empty slice
// restricts requests to no scopes at all. Hawk signing lives in package
// taskcluster/hawk.
type Credentials struct {
	ClientID         string   `json:"clientId"`
	AccessToken      string   `json:"accessToken"`
	Certificate      string   `json:"certificate,omitempty"`
	AuthorizedScopes []string `json:"authorizedScopes,omitempty"`
}
