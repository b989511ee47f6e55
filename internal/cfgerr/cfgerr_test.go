package cfgerr

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestPrefix(t *testing.T) {
	err := errors.Join(
		New("url", "not an absolute URL"),
		errors.Join(New("", "is required"), New("[0]", "empty")),
		errors.New("plain problem"),
	)
	got := []string{}
	for _, e := range Flatten(Prefix("routes[2].sink.http", err)) {
		got = append(got, e.Error())
	}
	want := []string{
		"routes[2].sink.http.url: not an absolute URL",
		"routes[2].sink.http: is required",
		"routes[2].sink.http[0]: empty",
		"routes[2].sink.http: plain problem",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Prefix() mismatch (-want +got):\n%s", diff)
	}
	if Prefix("x", nil) != nil {
		t.Error("Prefix(x, nil) got non-nil, want nil")
	}
}
