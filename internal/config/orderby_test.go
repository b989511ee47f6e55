package config_test

import (
	"strings"
	"testing"

	"github.com/vrelay/vrelay/internal/config"
)

func TestOrderBy(t *testing.T) {
	tests := []struct {
		name  string
		yaml  string
		want  string // "" when valid
		total bool   // orderBy is set to the empty string
	}{
		{name: "key", yaml: `{orderBy: data.Vm.Vm.Value}`},
		{name: "empty string orders the whole route", yaml: `{orderBy: ""}`, total: true},
		{name: "does not compile", yaml: `{orderBy: "data.Vm +"}`,
			want: `routes[0].delivery.orderBy: route "vms": line 1, column`},
		{name: "with batches", yaml: `{orderBy: subject, maxBatch: 10}`,
			want: "routes[0].delivery.orderBy: cannot be combined with maxBatch above 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := "routes:\n  - name: vms\n    sink: {type: log}\n    delivery: " + tt.yaml + "\n"
			cfg, err := config.Parse([]byte(src))
			if tt.want != "" {
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("got %v, want an error with %q", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			ob := cfg.Routes[0].Delivery.OrderBy
			if ob == nil || (*ob == "") != tt.total {
				t.Errorf("orderBy = %v, want set (empty: %v)", ob, tt.total)
			}
		})
	}
	// Unset stays nil: no order.
	cfg, err := config.Parse([]byte("routes:\n  - name: vms\n    sink: {type: log}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if ob := cfg.Routes[0].Delivery.OrderBy; ob != nil {
		t.Errorf("orderBy = %q when unset, want nil", *ob)
	}
}
