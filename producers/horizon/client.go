package horizon

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/vrelay/vrelay/internal/secret"
)

// The Horizon Server REST API, as far as this source uses it.
const (
	loginPath   = "/rest/login"
	refreshPath = "/rest/refresh"
	logoutPath  = "/rest/logout"
	auditPath   = "/rest/external/v1/audit-events"

	// headerHasMore is TRUE when more pages follow.
	headerHasMore = "HAS_MORE_RECORDS"
	// headerRetryAfter is how long Horizon 2406 and later ask a throttled
	// client (429) to wait, in seconds.
	headerRetryAfter = "X-Rate-Limit-Retry-After-Seconds"

	// maxErrorBody and maxPageBody bound what is read of an answer.
	maxErrorBody = 64 << 10
	maxPageBody  = 256 << 20
	// maxRetryAfter caps a wait Horizon asks for, should it ask for hours.
	maxRetryAfter = 10 * time.Minute
)

// What a request was doing, for error messages.
const (
	opLogin   = "log in to horizon"
	opRefresh = "refresh the horizon access token"
	opRead    = "read horizon audit events"
)

// apiError is an answer from Horizon other than success, with what its
// APIError body ({"error_key", "error_message"}) said, if anything.
type apiError struct {
	op         string
	status     int
	key, msg   string
	retryAfter time.Duration // from X-Rate-Limit-Retry-After-Seconds or Retry-After
}

func (e *apiError) Error() string {
	s := fmt.Sprintf("%s: HTTP %d %s", e.op, e.status, http.StatusText(e.status))
	switch {
	case e.msg != "" && e.key != "":
		s += ": " + e.msg + " (" + e.key + ")"
	case e.msg != "":
		s += ": " + e.msg
	case e.key != "":
		s += ": " + e.key
	}
	return s
}

// errRefreshRejected: Horizon answered 400 (or 401) to a refresh, which
// means the refresh token expired: log in again.
var errRefreshRejected = errors.New("refresh token rejected")

// client is one Horizon API session: its tokens and its HTTP client. A
// client is used by one goroutine at a time.
type client struct {
	base             *url.URL
	hc               *http.Client
	domain, username string
	password         secret.Value

	access, refresh string
	// accessExpiry is when the access token expires on Horizon's clock,
	// accessLife how long it lived when issued; zero when the token did
	// not say (then only a 401 renews it).
	accessExpiry time.Time
	accessLife   time.Duration
	// skew is Horizon's clock minus ours, learnt from Date headers.
	skew time.Duration

	// onLogin and onRefresh count successful logins and refreshes.
	onLogin, onRefresh func()
}

func (s *Source) newClient() *client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{
		MinVersion:         tls.VersionTLS12,
		RootCAs:            s.roots,
		InsecureSkipVerify: s.cfg.SkipTLSVerify, //nolint:gosec // an operator's explicit choice, for labs
	}
	hc := &http.Client{
		Transport: tr,
		Timeout:   s.timeout,
		// A redirect is answered as it comes (an *apiError): the login
		// carries the password in its body, which a 307 would take to
		// wherever it points.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return &client{
		base:      s.base,
		hc:        hc,
		domain:    s.cfg.Domain,
		username:  s.cfg.Username,
		password:  s.password,
		onLogin:   s.metrics.logins.Inc,
		onRefresh: s.metrics.refreshes.Inc,
	}
}

// now is Horizon's current time, as well as the client knows it.
func (c *client) now() time.Time { return time.Now().Add(c.skew) }

// observe learns Horizon's clock from an answer's Date header. Date has
// whole seconds, so a sample is Horizon's time rounded down: offsets
// within about a second are taken for none, larger ones are kept (a
// Connection Server or vrelay host without NTP).
func (c *client) observe(h http.Header, received time.Time) {
	d, err := http.ParseTime(h.Get("Date"))
	if err != nil {
		return
	}
	sample := d.Sub(received)
	if sample > -1500*time.Millisecond && sample < 500*time.Millisecond {
		c.skew = 0
		return
	}
	c.skew = sample + 500*time.Millisecond
}

// loggedIn reports whether the client holds a session to log out of.
func (c *client) loggedIn() bool { return c.refresh != "" }

// login logs in with the domain, user name and password and keeps both
// tokens.
func (c *client) login(ctx context.Context) error {
	body, err := json.Marshal(map[string]string{
		"domain":   c.domain,
		"username": c.username,
		"password": c.password.Reveal(),
	})
	if err != nil {
		return fmt.Errorf("%s: %w", opLogin, err)
	}
	status, h, b, err := c.send(ctx, http.MethodPost, loginPath, body, "")
	if err != nil {
		return fmt.Errorf("%s: %w", opLogin, err)
	}
	if status != http.StatusOK {
		return answerError(opLogin, status, h, b)
	}
	var tok struct {
		Access  string `json:"access_token"`
		Refresh string `json:"refresh_token"`
	}
	if err := json.Unmarshal(b, &tok); err != nil || tok.Access == "" || tok.Refresh == "" {
		return fmt.Errorf("%s: the answer holds no access_token and refresh_token", opLogin)
	}
	c.refresh = tok.Refresh
	c.setAccess(tok.Access)
	c.onLogin()
	return nil
}

// renew gets a new access token with the refresh token, and logs in again
// when Horizon rejects that (the refresh token expired, after 8 hours by
// default) or when there is none.
func (c *client) renew(ctx context.Context) error {
	if c.refresh != "" {
		err := c.refreshAccess(ctx)
		if !errors.Is(err, errRefreshRejected) {
			return err
		}
		c.refresh = ""
	}
	return c.login(ctx)
}

func (c *client) refreshAccess(ctx context.Context) error {
	body, err := json.Marshal(map[string]string{"refresh_token": c.refresh})
	if err != nil {
		return fmt.Errorf("%s: %w", opRefresh, err)
	}
	status, h, b, err := c.send(ctx, http.MethodPost, refreshPath, body, "")
	if err != nil {
		return fmt.Errorf("%s: %w", opRefresh, err)
	}
	switch status {
	case http.StatusOK:
	case http.StatusBadRequest, http.StatusUnauthorized:
		return errRefreshRejected
	default:
		return answerError(opRefresh, status, h, b)
	}
	var tok struct {
		Access string `json:"access_token"`
	}
	if err := json.Unmarshal(b, &tok); err != nil || tok.Access == "" {
		return fmt.Errorf("%s: the answer holds no access_token", opRefresh)
	}
	c.setAccess(tok.Access)
	c.onRefresh()
	return nil
}

// setAccess keeps an access token and, if it is a JWT with iat and exp as
// Horizon's are, when it expires.
func (c *client) setAccess(tok string) {
	c.access = tok
	c.accessExpiry, c.accessLife = time.Time{}, 0
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return
	}
	var claims struct {
		IssuedAt  float64 `json:"iat"`
		ExpiresAt float64 `json:"exp"`
	}
	if json.Unmarshal(payload, &claims) != nil || claims.ExpiresAt <= 0 {
		return
	}
	ms := func(sec float64) time.Time { return time.UnixMilli(int64(sec * 1000)) }
	c.accessExpiry = ms(claims.ExpiresAt)
	if claims.IssuedAt > 0 && claims.IssuedAt < claims.ExpiresAt {
		c.accessLife = c.accessExpiry.Sub(ms(claims.IssuedAt))
	}
}

// expiring reports whether the access token is about to expire: within a
// tenth of its life, at most a minute (a minute of the 30 minutes Horizon
// gives), or a minute if its life is unknown.
func (c *client) expiring() bool {
	if c.accessExpiry.IsZero() {
		return false
	}
	margin := time.Minute
	if c.accessLife > 0 {
		margin = min(margin, c.accessLife/10)
	}
	return !c.now().Add(margin).Before(c.accessExpiry)
}

// get sends an authenticated GET, logging in or refreshing the token first
// when needed, and once more after a 401. It returns the answer of a 200;
// any other status is an *apiError.
func (c *client) get(ctx context.Context, op, path string, q url.Values) (http.Header, []byte, error) {
	switch {
	case c.refresh == "":
		if err := c.login(ctx); err != nil {
			return nil, nil, err
		}
	case c.access == "" || c.expiring():
		if err := c.renew(ctx); err != nil {
			return nil, nil, err
		}
	}
	target := path
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	for retried := false; ; retried = true {
		status, h, b, err := c.send(ctx, http.MethodGet, target, nil, c.access)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", op, err)
		}
		if status == http.StatusUnauthorized && !retried {
			// Expired or revoked: refresh (or log in) and try once more.
			c.access = ""
			if err := c.renew(ctx); err != nil {
				return nil, nil, err
			}
			continue
		}
		if status != http.StatusOK {
			return nil, nil, answerError(op, status, h, b)
		}
		return h, b, nil
	}
}

// logout ends the session, if there is one. Errors are ignored: the
// session may be gone already, and it expires anyway.
func (c *client) logout(ctx context.Context) {
	if c.refresh == "" {
		return
	}
	body, err := json.Marshal(map[string]string{"refresh_token": c.refresh})
	if err == nil {
		_, _, _, _ = c.send(ctx, http.MethodPost, logoutPath, body, c.access)
	}
	c.access, c.refresh = "", ""
	c.hc.CloseIdleConnections()
}

// send makes one request and reads the answer: a page up to maxPageBody,
// anything else up to maxErrorBody. It never puts a token or the password
// in an error.
func (c *client) send(ctx context.Context, method, target string, body []byte, token string) (status int, h http.Header, b []byte, err error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base.String()+target, rd)
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "vrelay")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer res.Body.Close()
	c.observe(res.Header, time.Now())
	limit := int64(maxErrorBody)
	if res.StatusCode == http.StatusOK && method == http.MethodGet {
		limit = maxPageBody
	}
	b, err = io.ReadAll(io.LimitReader(res.Body, limit+1))
	if err != nil {
		return 0, nil, nil, fmt.Errorf("read the answer: %w", err)
	}
	if int64(len(b)) > limit {
		if res.StatusCode == http.StatusOK {
			return 0, nil, nil, fmt.Errorf("the answer is larger than %d bytes", limit)
		}
		b = b[:limit]
	}
	return res.StatusCode, res.Header, b, nil
}

// answerError makes the *apiError of a non-success answer.
func answerError(op string, status int, h http.Header, body []byte) error {
	e := &apiError{op: op, status: status}
	var ae struct {
		Key string `json:"error_key"`
		Msg string `json:"error_message"`
	}
	if json.Unmarshal(body, &ae) == nil {
		e.key, e.msg = truncate(ae.Key, 200), truncate(ae.Msg, 500)
	}
	for _, name := range []string{headerRetryAfter, "Retry-After"} {
		if n, err := strconv.Atoi(strings.TrimSpace(h.Get(name))); err == nil && n >= 0 {
			e.retryAfter = min(time.Duration(n)*time.Second, maxRetryAfter)
			break
		}
	}
	return e
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// Failure kinds, for the log message that tells an operator what to fix
// and for vrelay_horizon_errors_total{kind}.
const (
	kindLogin     = "login"     // credentials rejected
	kindTLS       = "tls"       // certificate not trusted
	kindDenied    = "denied"    // 403, or 401 right after a login
	kindThrottled = "throttled" // 429
	kindConflict  = "conflict"  // 409: no event database?
	kindServer    = "server"    // 5xx
	kindNetwork   = "network"   // no answer
	kindOther     = "other"
)

func errorKind(err error) string {
	var ae *apiError
	if errors.As(err, &ae) {
		switch {
		case ae.op == opLogin && (ae.status == http.StatusUnauthorized || ae.status == http.StatusBadRequest || ae.status == http.StatusForbidden):
			return kindLogin
		case ae.status == http.StatusUnauthorized || ae.status == http.StatusForbidden:
			return kindDenied
		case ae.status == http.StatusTooManyRequests:
			return kindThrottled
		case ae.status == http.StatusConflict:
			return kindConflict
		case ae.status >= 500:
			return kindServer
		}
		return kindOther
	}
	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	var verify *tls.CertificateVerificationError
	if errors.As(err, &unknownCA) || errors.As(err, &hostname) || errors.As(err, &invalid) || errors.As(err, &verify) {
		return kindTLS
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return kindNetwork
	}
	return kindOther
}

// retryAfter is the wait Horizon asked for, or 0.
func retryAfter(err error) time.Duration {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.retryAfter
	}
	return 0
}
