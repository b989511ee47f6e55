package netaddr

import "testing"

func TestIsLoopback(t *testing.T) {
	tests := []struct {
		addr string
		want bool
	}{
		{"127.0.0.1:4222", true},
		{"127.1.2.3:4222", true},
		{"localhost:0", true},
		{"[::1]:8081", true},
		{":4222", false},
		{"0.0.0.0:4222", false},
		{"[::]:4222", false},
		{"10.0.0.7:8081", false},
		{"vrelay.example.com:8081", false},
		{"off", false},
	}
	for _, tt := range tests {
		if got := IsLoopback(tt.addr); got != tt.want {
			t.Errorf("IsLoopback(%q): got %v, want %v", tt.addr, got, tt.want)
		}
	}
}
