package netaddr

import (
	"strings"
	"testing"
)

func TestSplitListen(t *testing.T) {
	tests := []struct {
		name     string
		addr     string
		wantHost string
		wantPort int
		wantErr  string // substring; "" for a valid address
	}{
		{name: "loopback", addr: "127.0.0.1:4222", wantHost: "127.0.0.1", wantPort: 4222},
		{name: "every interface", addr: ":8080", wantPort: 8080},
		{name: "free port", addr: "localhost:0", wantHost: "localhost", wantPort: 0},
		{name: "highest port", addr: "[::1]:65535", wantHost: "::1", wantPort: 65535},
		{name: "no port", addr: "localhost", wantErr: `"localhost" is not host:port`},
		{name: "empty", addr: "", wantErr: `"" is not host:port`},
		{name: "off", addr: "off", wantErr: `"off" is not host:port`},
		{name: "port too high", addr: "127.0.0.1:65536", wantErr: "port must be a number from 0 to 65535"},
		{name: "negative port", addr: "127.0.0.1:-1", wantErr: "port must be a number from 0 to 65535"},
		{name: "signed port", addr: "127.0.0.1:+80", wantErr: "port must be a number from 0 to 65535"},
		{name: "named port", addr: "127.0.0.1:http", wantErr: `"127.0.0.1:http": port must be`},
		{name: "empty port", addr: "127.0.0.1:", wantErr: "port must be a number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			host, port, err := SplitListen(tt.addr)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("SplitListen(%q): got error %v, want one containing %q", tt.addr, err, tt.wantErr)
				}
				if CheckListen(tt.addr) == nil {
					t.Errorf("CheckListen(%q): got nil, want an error", tt.addr)
				}
				return
			}
			if err != nil || host != tt.wantHost || port != tt.wantPort {
				t.Errorf("SplitListen(%q): got %q, %d, %v; want %q, %d, nil", tt.addr, host, port, err, tt.wantHost, tt.wantPort)
			}
			if err := CheckListen(tt.addr); err != nil {
				t.Errorf("CheckListen(%q): got %v, want nil", tt.addr, err)
			}
		})
	}
}

func TestCheckListenOrOff(t *testing.T) {
	tests := []struct {
		name    string
		addr    string
		wantErr string
	}{
		{name: "off", addr: "off"},
		{name: "address", addr: "127.0.0.1:9090"},
		{name: "upper-case off", addr: "OFF", wantErr: `"OFF" is not host:port (or "off" for no listener)`},
		{name: "bad port", addr: "x:99999", wantErr: `port must be a number from 0 to 65535 (or "off" for no listener)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckListenOrOff(tt.addr)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("CheckListenOrOff(%q): got %v, want %q", tt.addr, err, tt.wantErr)
			}
		})
	}
}
