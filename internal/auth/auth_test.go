package auth_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/vrelay/vrelay/internal/auth"
	"github.com/vrelay/vrelay/internal/secret"
)

func TestValidate(t *testing.T) {
	ref := secret.Ref{FromEnv: "X"}
	tests := []struct {
		name string
		cfg  auth.Config
		want string // "" for valid
	}{
		{name: "token", cfg: auth.Config{Token: ref}},
		{name: "user and password", cfg: auth.Config{User: "prometheus", Password: ref}},
		{name: "nothing", cfg: auth.Config{}, want: "set token, or user and password"},
		{name: "token and user", cfg: auth.Config{Token: ref, User: "u"}, want: "set token, or user and password, not both"},
		{name: "token and password", cfg: auth.Config{Token: ref, Password: ref}, want: "not both"},
		{name: "user alone", cfg: auth.Config{User: "u"}, want: "password: is required with user"},
		{name: "password alone", cfg: auth.Config{Password: ref}, want: "user: is required with password"},
		{name: "colon in user", cfg: auth.Config{User: "a:b", Password: ref}, want: "user: may not contain ':'"},
		{name: "two sources", cfg: auth.Config{Token: secret.Ref{FromEnv: "X", FromFile: "f"}}, want: "token: set fromEnv or fromFile, not both"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.want == "" {
				if err != nil {
					t.Errorf("got %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestResolveNamesTheField(t *testing.T) {
	_, err := auth.Config{User: "u", Password: secret.Ref{FromEnv: "VRELAY_TEST_AUTH_UNSET_XYZ"}}.Resolve()
	if err == nil || !strings.HasPrefix(err.Error(), "password: environment variable VRELAY_TEST_AUTH_UNSET_XYZ") {
		t.Errorf("got %v, want an error starting with the field", err)
	}
}

func TestRequire(t *testing.T) {
	const pw = "correct-horse-battery"
	t.Setenv("VRELAY_TEST_AUTH", pw)
	ref := secret.Ref{FromEnv: "VRELAY_TEST_AUTH"}
	type req struct {
		name   string
		header string // Authorization
		basic  []string
		want   int
	}
	tests := []struct {
		name      string
		cfg       auth.Config
		challenge string
		reqs      []req
	}{
		{name: "bearer", cfg: auth.Config{Token: ref}, challenge: `Bearer realm="vrelay"`, reqs: []req{
			{name: "none", want: 401},
			{name: "wrong token", header: "Bearer nope", want: 401},
			{name: "prefix of the token", header: "Bearer " + pw[:5], want: 401},
			{name: "basic instead", basic: []string{"x", pw}, want: 401},
			{name: "no scheme", header: pw, want: 401},
			{name: "right", header: "Bearer " + pw, want: 200},
			{name: "scheme in lower case", header: "bearer " + pw, want: 200},
		}},
		{name: "basic", cfg: auth.Config{User: "prom", Password: ref}, challenge: `Basic realm="vrelay", charset="UTF-8"`, reqs: []req{
			{name: "none", want: 401},
			{name: "wrong password", basic: []string{"prom", "nope"}, want: 401},
			{name: "wrong user", basic: []string{"other", pw}, want: 401},
			{name: "bearer instead", header: "Bearer " + pw, want: 401},
			{name: "right", basic: []string{"prom", pw}, want: 200},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			creds, err := tt.cfg.Resolve()
			if err != nil {
				t.Fatal(err)
			}
			h := creds.Require(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "metrics") }))
			for _, r := range tt.reqs {
				req := httptest.NewRequest("GET", "/metrics", nil)
				if r.header != "" {
					req.Header.Set("Authorization", r.header)
				}
				if r.basic != nil {
					req.SetBasicAuth(r.basic[0], r.basic[1])
				}
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				body := rec.Body.String()
				if rec.Code != r.want {
					t.Errorf("%s: got status %d, want %d", r.name, rec.Code, r.want)
				}
				if r.want == 200 && body != "metrics" {
					t.Errorf("%s: got body %q, want the handler's", r.name, body)
				}
				if r.want == 401 {
					if got := rec.Header().Get("WWW-Authenticate"); got != tt.challenge {
						t.Errorf("%s: got WWW-Authenticate %q, want %q", r.name, got, tt.challenge)
					}
					if strings.Contains(body, pw) || strings.Contains(body, "metrics") || strings.Contains(body, "prom") {
						t.Errorf("%s: 401 body %q says too much", r.name, body)
					}
				}
			}
		})
	}
}
