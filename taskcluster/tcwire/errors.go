package tcwire

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// APIError is a non-2xx answer from a Taskcluster service (or from a signed
// upload URL). Taskcluster services answer errors with a JSON body
// {"code": ..., "message": ..., "requestInfo": {...}}; Code and Message are
// taken from it when present, otherwise Message holds the start of the body.
type APIError struct {
	// StatusCode is the HTTP status.
	StatusCode int
	// Code is Taskcluster's error code, e.g. "ResourceNotFound",
	// "RequestConflict", "InputValidationError", "AuthenticationFailed",
	// "InsufficientScopes"; empty if the body had none.
	Code string
	// Message is the service's explanation.
	Message string
	// RequestID is the service's request id (x-for-request-id header).
	RequestID string
	// TraceID is the trace id (x-for-trace-id header).
	TraceID string
	// Method and URL identify the request; the URL's query is dropped, as
	// bewits and storage signatures live there.
	Method, URL string
}

// Error implements error.
func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: %d %s", e.Method, e.URL, e.StatusCode, http.StatusText(e.StatusCode))
	if e.Code != "" {
		fmt.Fprintf(&b, " (%s)", e.Code)
	}
	if e.Message != "" {
		msg := e.Message
		if len(msg) > 1000 {
			msg = msg[:1000] + "..."
		}
		fmt.Fprintf(&b, ": %s", msg)
	}
	if e.RequestID != "" {
		fmt.Fprintf(&b, " [request %s]", e.RequestID)
	}
	return b.String()
}

// Is lets errors.Is match the sentinels ErrNotFound, ErrConflict,
// ErrUnauthorized and ErrForbidden by status code.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.StatusCode == http.StatusNotFound
	case ErrConflict:
		return e.StatusCode == http.StatusConflict
	case ErrUnauthorized:
		return e.StatusCode == http.StatusUnauthorized
	case ErrForbidden:
		return e.StatusCode == http.StatusForbidden
	}
	return false
}

// Sentinels matched by *APIError through errors.Is.
var (
	// ErrNotFound is a 404 answer.
	ErrNotFound = errors.New("taskcluster: not found")
	// ErrConflict is a 409 answer: for reclaimTask and the report* calls,
	// the run is no longer this worker's (cancelled, deadline exceeded,
	// claim expired or already resolved).
	ErrConflict = errors.New("taskcluster: conflict")
	// ErrUnauthorized is a 401 answer (bad signature or credentials).
	ErrUnauthorized = errors.New("taskcluster: unauthorized")
	// ErrForbidden is a 403 answer (insufficient scopes).
	ErrForbidden = errors.New("taskcluster: forbidden")
)

// StatusCode returns the HTTP status of an *APIError in err's chain, or 0.
func StatusCode(err error) int {
	var e *APIError
	if errors.As(err, &e) {
		return e.StatusCode
	}
	return 0
}
