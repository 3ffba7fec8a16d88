package taskclusterproxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/workergen/workergen/task"
	"github.com/workergen/workergen/taskcluster"
	"github.com/workergen/workergen/taskcluster/hawk"
)

// bewitTTL is how long a URL signed through /bewit stays valid (upstream:
// one hour).
const bewitTTL = time.Hour

// handler is one run's proxy (see the package documentation for routes).
type handler struct {
	rootURL string
	client  *taskcluster.Client
	maxBody int64
	logger  *slog.Logger
	creds   func() *task.Credentials
}

// hopHeaders are connection-level headers (RFC 9110 section 7.6.1) that a
// proxy does not pass on, plus what the proxy sets itself.
var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade", "Authorization", "Host", "Content-Length",
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.identify(w)
	path := r.URL.EscapedPath()
	switch {
	case path == "/bewit":
		h.bewit(w, r)
		return
	case path == "/credentials" || strings.HasPrefix(path, "/credentials/"):
		proxyError(w, http.StatusForbidden, "Forbidden", "the worker keeps this proxy's credentials current; a task cannot replace them")
		return
	}
	if h.rootURL == "" {
		proxyError(w, http.StatusServiceUnavailable, "NoDeployment", "this task runs without a Taskcluster deployment (run mode): there is nothing to proxy to")
		return
	}
	target, err := h.target(r.URL)
	if err != nil {
		proxyError(w, http.StatusNotFound, "ResourceNotFound", err.Error())
		return
	}
	w.Header().Set("X-Taskcluster-Endpoint", target.String())

	if r.ContentLength > h.maxBody {
		proxyError(w, http.StatusRequestEntityTooLarge, "InputTooLarge",
			fmt.Sprintf("the request body is %d bytes, over %d (plugins.taskclusterproxy.maxRequestBody)", r.ContentLength, h.maxBody))
		return
	}
	var body []byte
	if r.Body != nil {
		body, err = io.ReadAll(io.LimitReader(r.Body, h.maxBody+1))
		if err != nil {
			proxyError(w, http.StatusBadRequest, "InputError", "reading the request body: "+err.Error())
			return
		}
		if int64(len(body)) > h.maxBody {
			proxyError(w, http.StatusRequestEntityTooLarge, "InputTooLarge",
				fmt.Sprintf("the request body is over %d bytes (plugins.taskclusterproxy.maxRequestBody)", h.maxBody))
			return
		}
	}
	resp, err := h.client.Forward(r.Context(), "taskcluster proxy", func(ctx context.Context) (*http.Request, error) {
		out, err := http.NewRequestWithContext(ctx, r.Method, target.String(), bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		for k, vs := range r.Header {
			out.Header[k] = append([]string(nil), vs...)
		}
		for _, k := range hopHeaders {
			out.Header.Del(k)
		}
		if len(body) > 0 && r.Header.Get("Content-Type") == "" {
			out.Header.Set("Content-Type", "application/json")
		}
		return out, nil
	})
	if err != nil {
		var apiErr *taskcluster.APIError
		if errors.As(err, &apiErr) {
			proxyError(w, apiErr.StatusCode, apiErr.Code, apiErr.Message)
			return
		}
		if r.Context().Err() != nil {
			return // the task went away
		}
		h.logger.Warn("taskcluster proxy: request failed", "method", r.Method, "target", target.Redacted(), "err", err)
		proxyError(w, http.StatusBadGateway, "ProxyError", err.Error())
		return
	}
	defer resp.Body.Close()
	for k, vs := range resp.Header {
		if k == "Content-Length" || k == "Transfer-Encoding" || k == "Connection" {
			continue
		}
		w.Header()[k] = vs
	}
	if resp.ContentLength >= 0 {
		w.Header().Set("Content-Length", fmt.Sprint(resp.ContentLength))
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

// target maps a request path to the URL it is forwarded to. Paths with
// "." or ".." segments are refused rather than sent on to be resolved
// elsewhere, and so is a hostname form whose host holds user info.
func (h *handler) target(u *url.URL) (*url.URL, error) {
	for _, seg := range strings.Split(u.Path, "/") {
		if seg == "." || seg == ".." {
			return nil, fmt.Errorf("%s: \".\" and \"..\" path segments are not allowed", u.EscapedPath())
		}
	}
	segs := strings.SplitN(strings.TrimPrefix(u.EscapedPath(), "/"), "/", 4)
	if strings.ContainsAny(segs[0], "@%") {
		return nil, fmt.Errorf("%s: %q is not a service name or a host name", u.EscapedPath(), segs[0])
	}
	var raw string
	switch {
	case segs[0] == "api" && len(segs) == 4 && segs[1] != "" && segs[2] != "":
		raw = strings.TrimSuffix(h.rootURL, "/") + "/api/" + segs[1] + "/" + segs[2] + "/" + segs[3]
	case segs[0] == "api":
		return nil, fmt.Errorf("%s: want /api/<service>/<version>/<path>", u.EscapedPath())
	case strings.Contains(segs[0], "."):
		raw = "https://" + strings.TrimPrefix(u.EscapedPath(), "/")
	case len(segs) >= 3 && segs[0] != "" && segs[1] != "":
		raw = strings.TrimSuffix(h.rootURL, "/") + "/api/" + strings.TrimPrefix(u.EscapedPath(), "/")
	default:
		return nil, fmt.Errorf("%s: want /api/<service>/<version>/<path>, /<service>/<version>/<path> or /<hostname>/<path>", u.EscapedPath())
	}
	t, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", u.EscapedPath(), err)
	}
	t.RawQuery = u.RawQuery
	return t, nil
}

// bewit answers POST /bewit: the URL in the body, signed for bewitTTL.
func (h *handler) bewit(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		proxyError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "POST the URL to sign as the request body")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		proxyError(w, http.StatusBadRequest, "InputError", "reading the request body: "+err.Error())
		return
	}
	u, err := url.Parse(strings.TrimSpace(string(body)))
	if err != nil || u.Scheme == "" || u.Host == "" {
		proxyError(w, http.StatusBadRequest, "InputError", fmt.Sprintf("the body must be an absolute URL to sign, got %q", strings.TrimSpace(string(body))))
		return
	}
	if h.creds == nil || h.creds() == nil {
		proxyError(w, http.StatusServiceUnavailable, "NoCredentials", "this run has no Taskcluster credentials to sign with (run mode)")
		return
	}
	signed, err := h.client.SignedURL(u, bewitTTL)
	if err != nil {
		proxyError(w, http.StatusInternalServerError, "InternalError", "signing: "+err.Error())
		return
	}
	w.Header().Set("Location", signed.String())
	w.WriteHeader(http.StatusSeeOther)
	_, _ = io.WriteString(w, signed.String())
}

// identify sets the headers that tell the task which client signs for it.
func (h *handler) identify(w http.ResponseWriter) {
	if h.creds == nil {
		return
	}
	c := h.creds()
	if c == nil {
		return
	}
	if c.Certificate == "" {
		w.Header().Set("X-Taskcluster-Proxy-Perm-ClientId", c.ClientID)
		return
	}
	w.Header().Set("X-Taskcluster-Proxy-Temp-ClientId", c.ClientID)
	if cert, err := hawk.ParseCertificate([]byte(c.Certificate)); err == nil {
		if b, err := json.Marshal(cert.Scopes); err == nil {
			w.Header().Set("X-Taskcluster-Proxy-Temp-Scopes", string(b))
		}
	}
}

// proxyError writes a Taskcluster-style JSON error.
func proxyError(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // read by people with curl: keep "<service>" as is
	_ = enc.Encode(map[string]string{"code": code, "message": message})
}
