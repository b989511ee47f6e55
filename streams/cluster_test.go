package streams_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/vrelay/vrelay/internal/natstest"
	"github.com/vrelay/vrelay/streams"
)

// TestEnsureClusterR3: on a 3-node cluster, Ensure creates every stream
// and bucket with three replicas and the placement, and running it again
// (another replica starting) changes nothing.
func TestEnsureClusterR3(t *testing.T) {
	c := natstest.StartCluster(t)
	_, js := natstest.Connect(t, strings.Split(c.URL(), ",")[0])
	var cfg streams.Config
	cfg.SetDefaults()
	cfg.Replicas = 3
	cfg.Placement = &streams.Placement{Cluster: "vrelay-test"}
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		err := streams.Ensure(ctx, js, cfg, nil)
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := streams.Ensure(t.Context(), js, cfg, nil); err != nil {
		t.Fatalf("second Ensure: %v", err)
	}
	for _, name := range []string{streams.EventStream, streams.DLQStream, streams.ReplayStream, streams.HealthStream,
		"KV_" + streams.CheckpointBucket, "KV_" + streams.LeaseBucket} {
		s, err := js.Stream(t.Context(), name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got := s.CachedInfo().Config
		if got.Replicas != 3 || got.Placement == nil || got.Placement.Cluster != "vrelay-test" {
			t.Errorf("%s: replicas %d, placement %+v; want 3 on vrelay-test", name, got.Replicas, got.Placement)
		}
	}
	kv, err := js.KeyValue(t.Context(), streams.LeaseBucket)
	if err != nil {
		t.Fatal(err)
	}
	st, err := kv.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.TTL() != streams.DefaultLeaseTTL {
		t.Errorf("lease bucket TTL: got %s, want %s", st.TTL(), streams.DefaultLeaseTTL)
	}
}

func TestLeaseConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*streams.Config)
		want string
	}{
		{"short lease", func(c *streams.Config) { c.LeaseTTL = 500 * time.Millisecond }, "leaseTTL"},
		{"empty tag", func(c *streams.Config) { c.Placement = &streams.Placement{Tags: []string{""}} }, "placement.tags"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c streams.Config
			c.SetDefaults()
			tt.edit(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate: got %v, want an error about %s", err, tt.want)
			}
		})
	}
}
