package config

import (
	"strings"
	"testing"
)

// Mistakes a new user makes get messages that say what to write.
func TestParseHints(t *testing.T) {
	cases := map[string]struct{ doc, want, not string }{
		"url without scheme": {
			"routes:\n  - {name: a, sink: {type: http, http: {url: 127.0.0.1:15080/ok}}}\n",
			"routes[0].sink.http.url: 127.0.0.1:15080/ok has no scheme: write http://127.0.0.1:15080/ok", "first path segment"},
		"host without scheme": {
			"routes:\n  - {name: a, sink: {type: http, http: {url: example.com/hook}}}\n",
			"example.com/hook has no scheme", "absolute"},
		"credentials without scheme": {
			"routes:\n  - {name: a, sink: {type: http, http: {url: 'u:s3cret@example.com/hook'}}}\n",
			"has no scheme", "s3cret"},
		"knative uri without scheme": {
			"routes:\n  - {name: a, sink: {type: knative, knative: {uri: broker.default:8080}}}\n",
			"routes[0].sink.knative.uri: broker.default:8080 has no scheme", "first path segment"},
		"duration as a number": {
			"routes:\n  - name: a\n    sink: {type: log}\n    delivery: {sendTimeout: 30}\n",
			`line 4: got 30, want a duration string such as "30s"`, "!!int"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc))
			if err == nil {
				t.Fatal("Parse accepted it")
			}
			if msg := err.Error(); !strings.Contains(msg, tc.want) || strings.Contains(msg, tc.not) {
				t.Fatalf("err = %q, want %q and not %q", msg, tc.want, tc.not)
			}
		})
	}
}
