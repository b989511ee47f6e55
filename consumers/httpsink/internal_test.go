package httpsink

import (
	"strings"
	"testing"
	"time"

	"github.com/vrelay/vrelay/internal/secret"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		value  string
		want   time.Duration
		wantOK bool
	}{
		{name: "empty", value: ""},
		{name: "seconds", value: "3", want: 3 * time.Second, wantOK: true},
		{name: "seconds with spaces", value: " 120 ", want: 2 * time.Minute, wantOK: true},
		{name: "zero seconds", value: "0"},
		{name: "negative seconds", value: "-5"},
		{name: "fraction", value: "1.5"},
		{name: "huge seconds do not overflow", value: "99999999999999999", want: time.Duration(1<<63-1) / time.Second * time.Second, wantOK: true},
		{name: "IMF-fixdate", value: "Sun, 01 Mar 2026 12:01:30 GMT", want: 90 * time.Second, wantOK: true},
		{name: "RFC 850 date", value: "Sunday, 01-Mar-26 12:00:10 GMT", want: 10 * time.Second, wantOK: true},
		{name: "ANSI C date", value: "Sun Mar  1 12:00:05 2026", want: 5 * time.Second, wantOK: true},
		{name: "date in the past", value: "Sun, 01 Mar 2026 11:59:00 GMT"},
		{name: "garbage", value: "soon"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseRetryAfter(tt.value, now)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("parseRetryAfter(%q): got %s, %v; want %s, %v", tt.value, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestSnippet(t *testing.T) {
	tests := []struct {
		name  string
		body  string
		scrub []secret.Value
		want  string
	}{
		{name: "empty", body: "", want: ""},
		{name: "one line", body: "  bad request\n", want: "bad request"},
		{name: "control characters", body: "a\r\nb\x00c\td", want: "a b c d"},
		{name: "invalid UTF-8", body: "a\xffb", want: "a\ufffdb"},
		{name: "secret removed", body: "token abc123 rejected", scrub: []secret.Value{"abc123"}, want: "token [redacted] rejected"},
		{name: "exactly 200", body: strings.Repeat("a", 200), want: strings.Repeat("a", 200)},
		{name: "cut at 197 plus ellipsis", body: strings.Repeat("a", 300), want: strings.Repeat("a", 197) + "..."},
		// "é" is two bytes: 98 of them fill 196 bytes, and byte 197 would
		// split the 99th, so the cut backs up to 196.
		{name: "cut on a rune boundary", body: strings.Repeat("é", 150), want: strings.Repeat("é", 98) + "..."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := snippet([]byte(tt.body), tt.scrub)
			if got != tt.want {
				t.Errorf("snippet(%q): got %q, want %q", tt.body, got, tt.want)
			}
			if len(got) > maxSnippet {
				t.Errorf("len(snippet): got %d, want at most %d", len(got), maxSnippet)
			}
		})
	}
}
