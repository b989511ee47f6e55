package jsonscan

import (
	"encoding/json"
	"strings"
	"testing"
)

// seeds are inputs at the edges of the grammar: the fuzz target starts from
// them, and TestValid checks each against encoding/json.
var seeds = []string{
	``, ` `, `{}`, `[]`, `{"a":1}`, `[1,2,3]`, `"x"`, `0`, `-0`, `01`, `-01`, `1.`, `1.5e+10`, `1E-2`, `-`, `1e`, `1e+`, `.5`,
	`+1`, `0x10`, `1.0e`, `-.5`, `00`, `1.5.5`, `1e5e5`, `Infinity`, `NaN`,
	`true`, `false`, `null`, `nul`, `truex`, `True`, `[1,]`, `[,1]`, `{,}`, `{"a":1,}`, `{"a" 1}`, `{"a":}`, `{1:2}`,
	`{"a":1 "b":2}`, `{"a"::1}`, `{"a":1}}`, `{"a":1} {}`, `[1 2]`, `[1]]`, `[[1]`, `{"a":[}`, `{"a":{]}`, `[{]}`,
	`"\u00e9"`, `"\u00G9"`, `"\x"`, `"\u12"`, `"\u"`, `"\`, `"\"`, `"\\"`, `"\/\b\f\n\r\t\"\\"`, `"\ud800"`, `"\ud83d\ude00"`,
	"\"a\tb\"", "\"a\x00b\"", "\"a\x1fb\"", "\"\x7f\"", "\"\xff\xfe\"", "\"\xc3\xa9\"", "\"é\"",
	`"unterminated`, `"0123456789abcdef0123456789abcdef"`, `"0123456789abcdef0123456789abc\"ef"`,
	" \n\t\r{ \"a\" : [ 1 , { } ] } \n", "\v1", "\f1", "1\u00a0", `[[[[]]]]`, `[{"a":[{"b":null}]}]`,
	`{"a":{"b":{"c":[1,{"d":"e"}]}},"f":[[],[{}]]}`, `{"a":1,"a":2}`, `1e400`, `-1e400`, `1e-400`, `[1e308,1.8e308]`,
	strings.Repeat("9", 400), `{"Key":1,"Other":` + strings.Repeat("1", 320) + `}`,
	`{"specversion":"1.0","id":"1","source":"urn:x","type":"t","datacontenttype":"application/json","data":{"a":[1,2]},"ext":"v"}`,
}

// wantAny is what ValidAny must report: whether json.Unmarshal into an any
// succeeds.
func wantAny(b []byte) bool {
	var v any
	return json.Unmarshal(b, &v) == nil
}

func TestValid(t *testing.T) {
	for _, s := range seeds {
		b := []byte(s)
		if got, want := Valid(b), json.Valid(b); got != want {
			t.Errorf("Valid(%q): got %t, want %t (json.Valid)", s, got, want)
		}
		if got, want := ValidAny(b), wantAny(b); got != want {
			t.Errorf("ValidAny(%q): got %t, want %t (json.Unmarshal)", s, got, want)
		}
	}
}

// TestDepth checks the nesting limit at its edge, for arrays, objects and
// both, and past the 64 containers kept in a word.
func TestDepth(t *testing.T) {
	nest := func(open, close string, depth int) []byte {
		return []byte(strings.Repeat(open, depth) + "1" + strings.Repeat(close, depth))
	}
	for _, depth := range []int{63, 64, 65, 129, MaxDepth - 1, MaxDepth, MaxDepth + 1} {
		for _, b := range [][]byte{
			nest("[", "]", depth),
			nest(`{"a":`, "}", depth),
			nest(`[{"a":`, "}]", depth/2),
			[]byte(strings.Repeat("[", depth) + strings.Repeat("]", depth)),
			// Brackets that do not match, deep down.
			[]byte(strings.Repeat(`[{"a":`, depth/2) + "1" + strings.Repeat("]}", depth/2)),
		} {
			if got, want := Valid(b), json.Valid(b); got != want {
				t.Errorf("Valid(%.20q... %d bytes): got %t, want %t (json.Valid)", b, len(b), got, want)
			}
		}
	}
}

// TestValueDepth checks that Value counts the containers around it.
func TestValueDepth(t *testing.T) {
	b := []byte("[[1]]")
	for _, tt := range []struct {
		depth int
		want  int
	}{{0, 5}, {MaxDepth - 2, 5}, {MaxDepth - 1, -1}} {
		if got := Value(b, 0, tt.depth); got != tt.want {
			t.Errorf("Value(%q, 0, %d): got %d, want %d", b, tt.depth, got, tt.want)
		}
	}
}

func TestEnds(t *testing.T) {
	tests := []struct {
		name string
		fn   func([]byte, int) int
		in   string
		i    int
		want int
	}{
		{"string", String, `"ab" x`, 0, 4},
		{"string escapes", String, `"a\"b\\" x`, 0, 8},
		{"string unicode escape", String, `x"\u00e9"`, 1, 9},
		{"string long", String, `"0123456789abcdef0123"`, 0, 22},
		{"string quote after eight", String, `"01234567"`, 0, 10},
		{"string not at quote", String, `ab`, 0, -1},
		{"string control", String, "\"a\nb\"", 0, -1},
		{"string control after eight", String, "\"0123456789\x01\"", 0, -1},
		{"string open", String, `"abc`, 0, -1},
		{"string escape at end", String, `"abc\`, 0, -1},
		{"string short unicode", String, `"\u00e"`, 0, -1},
		{"string index past end", String, `"a"`, 3, -1},
		{"string negative index", String, `"a"`, -1, -1},
		{"number", Number, `-12.5e+3,`, 0, 8},
		{"number zero", Number, `0.5]`, 0, 3},
		{"number big", Number, `1e400`, 0, 5},
		{"number leading zero", Number, `01`, 0, 1},
		{"number dot", Number, `1.x`, 0, -1},
		{"number minus", Number, `-x`, 0, -1},
		{"space", Space, " \t\r\n x", 0, 5},
		{"space none", Space, "x", 0, 0},
		{"space to end", Space, "  ", 0, 2},
		{"value object", func(b []byte, i int) int { return Value(b, i, 0) }, `{"a":[1,{}]} `, 0, 12},
		{"value in object", func(b []byte, i int) int { return Value(b, i, 1) }, `{"a":"b"}`, 5, 8},
		{"value number", func(b []byte, i int) int { return Value(b, i, 0) }, `1e400,`, 0, 5},
		{"any value number", func(b []byte, i int) int { return AnyValue(b, i, 0) }, `1e400,`, 0, -1},
		{"any value small number", func(b []byte, i int) int { return AnyValue(b, i, 0) }, `1e-400,`, 0, 6},
		{"value negative index", func(b []byte, i int) int { return Value(b, i, 0) }, `1`, -1, -1},
		{"literal", func(b []byte, i int) int { return Literal(b, i, "true") }, `[true]`, 1, 5},
		{"literal cut", func(b []byte, i int) int { return Literal(b, i, "true") }, `[tru`, 1, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.fn([]byte(tt.in), tt.i); got != tt.want {
				t.Errorf("on %q from %d: got %d, want %d", tt.in, tt.i, got, tt.want)
			}
		})
	}
}

// TestStringEveryByte puts each byte value at each place of a string long
// enough for the eight-byte steps, and compares with json.Valid.
func TestStringEveryByte(t *testing.T) {
	for c := range 256 {
		for at := range 20 {
			b := []byte(`"` + strings.Repeat("a", 20) + `"`)
			b[1+at] = byte(c)
			want := json.Valid(b)
			if got := String(b, 0) == len(b); got != want {
				t.Fatalf("String(%q) reads it all: got %t, want %t (json.Valid)", b, got, want)
			}
			checkStringPlain(t, b, 0)
		}
	}
}

// checkStringPlain fails t unless StringPlain(b, i) ends where String
// does and calls plain exactly the strings without a backslash or a byte
// past ASCII.
func checkStringPlain(t *testing.T, b []byte, i int) {
	t.Helper()
	end, plain := StringPlain(b, i)
	if want := String(b, i); end != want {
		t.Fatalf("StringPlain(%q, %d) ends at %d, String at %d", b, i, end, want)
	}
	if end < 0 {
		if plain {
			t.Fatalf("StringPlain(%q, %d): plain without a string", b, i)
		}
		return
	}
	want := !strings.ContainsFunc(string(b[i+1:end-1]), func(r rune) bool { return r == '\\' || r >= 0x80 })
	if plain != want {
		t.Fatalf("StringPlain(%q, %d) plain: got %t, want %t", b, i, plain, want)
	}
}

func TestStringPlain(t *testing.T) {
	for _, s := range append(seeds, `"0123456789abcdefé"`, `"0123456\u0041"`, `"é"`, `"abcdefg\"`, `"abcdefgh"x`) {
		checkStringPlain(t, []byte(s), 0)
	}
}

// FuzzValid checks Valid against json.Valid, ValidAny against
// json.Unmarshal, Value on a valid input against where it ends, and
// StringPlain against String.
func FuzzValid(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkStringPlain(t, b, 0)
		valid := json.Valid(b)
		if got := Valid(b); got != valid {
			t.Fatalf("Valid(%q): got %t, want %t (json.Valid)", b, got, valid)
		}
		if got, want := ValidAny(b), wantAny(b); got != want {
			t.Fatalf("ValidAny(%q): got %t, want %t (json.Unmarshal)", b, got, want)
		}
		if !valid {
			return
		}
		// The value ends where the input does, less trailing white space.
		i := Space(b, 0)
		end := len(b)
		for end > i && strings.ContainsRune(" \t\r\n", rune(b[end-1])) {
			end--
		}
		if got := Value(b, i, 0); got != end {
			t.Fatalf("Value(%q, %d, 0): got %d, want %d", b, i, got, end)
		}
	})
}

func BenchmarkValid(b *testing.B) {
	for _, tt := range []struct{ name, in string }{
		{"compact", benchCompact},
		{"indented", benchIndented},
	} {
		b.Run(tt.name, func(b *testing.B) {
			in := []byte(tt.in)
			b.SetBytes(int64(len(in)))
			for b.Loop() {
				if !Valid(in) {
					b.Fatal("invalid")
				}
			}
		})
	}
}

// benchCompact is the data of a vCenter event as vrelay stores it.
const benchCompact = `{"Key":16957152,"ChainId":16957152,"CreatedTime":"2026-01-02T03:04:05.123456Z",` +
	`"UserName":"VSPHERE.LOCAL\\svc-automation","Datacenter":{"Name":"dc-frankfurt-01","Datacenter":{"Type":"Datacenter","Value":"datacenter-3"}},` +
	`"ComputeResource":{"Name":"cluster-prod-01","ComputeResource":{"Type":"ClusterComputeResource","Value":"domain-c8"}},` +
	`"Host":{"Name":"esx-prod-01-14.frankfurt.example.com","Host":{"Type":"HostSystem","Value":"host-1042"}},` +
	`"Vm":{"Name":"prod-web-01","Vm":{"Type":"VirtualMachine","Value":"vm-81"}},"Ds":null,"Net":null,"Dvs":null,` +
	`"FullFormattedMessage":"vSphere HA initiated a failover action on 1 virtual machines in cluster cluster-prod-01 in datacenter dc-frankfurt-01",` +
	`"ChangeTag":"","EventTypeId":"com.vmware.vc.HA.ClusterFailoverActionInitiatedEvent","Severity":"warning","Message":"",` +
	`"Arguments":[{"Key":"computeResource.name","Value":"cluster-prod-01"},{"Key":"datacenter.name","Value":"dc-frankfurt-01"},` +
	`{"Key":"vm.name","Value":"prod-web-01"},{"Key":"host.name","Value":"esx-prod-01-14.frankfurt.example.com"},` +
	`{"Key":"reason","Value":"host failure detected by the master agent after the heartbeat timeout"}],` +
	`"ObjectId":"domain-c8","ObjectType":"ClusterComputeResource","ObjectName":"cluster-prod-01","Fault":null}`

// benchIndented is a vCenter event as a webhook sender may post it.
const benchIndented = `{
  "Key": 16957152,
  "ChainId": 16957145,
  "CreatedTime": "2023-11-27T10:00:08.715999Z",
  "UserName": "mydomain.com\\Administrator",
  "Datacenter": {"Name": "DC1", "Datacenter": {"Type": "Datacenter", "Value": "datacenter-1"}},
  "Vm": {"Name": "prod-web-01", "Vm": {"Type": "VirtualMachine", "Value": "vm-81"}},
  "Ds": null,
  "FullFormattedMessage": "vSphere HA initiated a failover action on 1 virtual machines in cluster Cluster1 in datacenter DC1",
  "Arguments": [
    {"Key": "computeResource.name", "Value": "Cluster1"},
    {"Key": "vm.name", "Value": "prod-web-01"},
    {"Key": "reason", "Value": "host failure detected by the master agent after the heartbeat timeout"}
  ],
  "Fault": null,
  "Template": false,
  "Ratio": -1.5e-3
}`
