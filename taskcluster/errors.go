package taskcluster

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/workergen/workergen/taskcluster/tcwire"
)

// APIError is a non-2xx answer from a Taskcluster service (see
// tcwire.APIError).
type APIError = tcwire.APIError

// Sentinels matched by *APIError through errors.Is (see tcwire).
var (
	ErrNotFound     = tcwire.ErrNotFound
	ErrConflict     = tcwire.ErrConflict
	ErrUnauthorized = tcwire.ErrUnauthorized
	ErrForbidden    = tcwire.ErrForbidden
)

// StatusCode returns the HTTP status of an *APIError in err's chain, or 0.
func StatusCode(err error) int { return tcwire.StatusCode(err) }

func newAPIError(method string, u *url.URL, resp *http.Response) *APIError {
	shown := *u
	shown.RawQuery = ""
	e := &APIError{
		StatusCode: resp.StatusCode,
		RequestID:  resp.Header.Get(HeaderResponseRequest),
		TraceID:    resp.Header.Get(HeaderResponseTrace),
		Method:     method,
		URL:        shown.String(),
	}
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var body struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	if json.Unmarshal(data, &body) == nil && (body.Code != "" || body.Message != "") {
		e.Code, e.Message = body.Code, body.Message
	} else {
		e.Message = oneLine(string(data), maxPlainErrorMessage)
	}
	return e
}

// maxPlainErrorMessage bounds, in runes, the message kept from an error
// answer that is not Taskcluster's JSON (an HTML page of a proxy or of a
// web server at a wrong rootUrl).
const maxPlainErrorMessage = 300

// oneLine is s with every run of white space (newlines included) made one
// space, trimmed, and cut to at most max runes ("..." appended when cut),
// so that a non-JSON error page reads as one line of the worker's log.
func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > max {
		s = string(r[:max]) + "..."
	}
	return s
}
