package streams

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/vrelay/vrelay/internal/jsonscan"
)

// FuzzDecodeV1Valid checks what lets Decode skip its validating pass: an
// event decodeV1 accepts comes from a body json.Valid accepts.
func FuzzDecodeV1Valid(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add([]byte(s))
	}
	for _, s := range decodeV1Seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, ok := decodeV1(b); ok && !json.Valid(b) {
			t.Fatalf("decodeV1(%q) accepted a body json.Valid rejects", b)
		}
	})
}

// decodeV1Seeds are bodies of the shape decodeV1 reads, broken where its
// own checks must catch it.
var decodeV1Seeds = []string{
	`{"specversion":"1.0","id":"1","source":"urn:x","type":"t","data":{"a":[1,2,]}}`,
	`{"specversion":"1.0","id":"1","source":"urn:x","type":"t","data":{"a":tru}}`,
	`{"specversion":"1.0","id":"1","source":"urn:x","type":"t","data":01}`,
	`{"specversion":"1.0","id":"1","source":"urn:x","type":"t","data":"a` + "\x01" + `"}`,
	`{"specversion":"1.0","id":"1","source":"urn:x","type":"t","data":"\x"}`,
	`{"specversion":"1.0","id":"1` + "\x01" + `","source":"urn:x","type":"t"}`,
	`{"specversion":"1.0","i` + "\t" + `d":"1","source":"urn:x","type":"t"}`,
	`{"specversion":"1.0","id":"1","source":"urn:x","type":"t","ext":tru}`,
	`{"specversion":"1.0","id":"1","source":"urn:x","type":"t","ext":fals}`,
	`{"specversion":"1.0","id":"1","source":"urn:x","type":"t","ext":+5}`,
	`{"specversion":"1.0","id":"1","source":"urn:x","type":"t","ext":007}`,
	`{"specversion":"1.0","id":"1","source":"urn:x","type":"t","ext":-}`,
	`{"specversion":"1.0","id":"1","source":"urn:x","type":"t","ext":true,"n":-12}`,
}

// TestDecodeRejectsInvalid checks that Decode rejects, as json.Unmarshal
// does, bodies of the shape its one pass reads that are not valid JSON.
func TestDecodeRejectsInvalid(t *testing.T) {
	for _, s := range decodeV1Seeds {
		b := []byte(s)
		if json.Valid(b) {
			continue
		}
		if _, err := Decode(b); err == nil {
			t.Errorf("Decode(%q): got nil error for invalid JSON", s)
		}
	}
}

// TestDecodeDataDepth checks the nesting limit inside the data, which
// lies one level inside the event's object.
func TestDecodeDataDepth(t *testing.T) {
	for _, depth := range []int{jsonscan.MaxDepth - 1, jsonscan.MaxDepth} {
		b := []byte(`{"specversion":"1.0","id":"1","source":"urn:x","type":"t","data":` +
			strings.Repeat("[", depth) + strings.Repeat("]", depth) + `}`)
		_, err := Decode(b)
		if want := json.Valid(b); (err == nil) != want {
			t.Errorf("data depth %d: Decode error %v, json.Valid %t", depth, err, want)
		}
	}
}

// TestInternTable checks that the table gives back what decode gives,
// keeps at most max values, and does not keep values too long to be worth it.
func TestInternTable(t *testing.T) {
	tab := internTable[string]{max: 3}
	calls := 0
	dec := func(s string) (string, bool) { calls++; return strings.ToUpper(s), s != "bad" }
	for _, s := range []string{"a", "b", "a", "c", "d", "e", "a", "d"} {
		got, ok := tab.get([]byte(s), dec)
		if !ok || got != strings.ToUpper(s) {
			t.Fatalf("get(%q) = %q, %t; want %q, true", s, got, ok, strings.ToUpper(s))
		}
	}
	if n := len(*tab.m.Load()); n != 3 {
		t.Errorf("table holds %d values, want 3", n)
	}
	// a, b, c kept; d decoded twice, e once: 3 + 2 + 1 + the first a.
	if calls != 6 {
		t.Errorf("decode called %d times, want 6", calls)
	}
	if _, ok := tab.get([]byte("bad"), dec); ok {
		t.Error("get of a value decode rejects: got ok")
	}
	long := strings.Repeat("x", maxInterned+1)
	small := internTable[string]{max: 10}
	small.get([]byte(long), dec)
	if m := small.m.Load(); m != nil && len(*m) != 0 {
		t.Errorf("a value of %d bytes was kept", len(long))
	}
}

// TestDecodeSharesNoBody checks that interned attribute values do not
// share the body's memory: a body reused for another event must not change
// the values of an event decoded before.
func TestDecodeSharesNoBody(t *testing.T) {
	body := []byte(`{"specversion":"1.0","id":"1","source":"urn:interned-test","type":"interned.type","datacontenttype":"application/json","ext":"interned-ext","data":{"a":1}}`)
	ev, err := Decode(body)
	if err != nil {
		t.Fatal(err)
	}
	for i := range body {
		if body[i] >= 'a' && body[i] <= 'z' {
			body[i] = 'q'
		}
	}
	if ev.Type() != "interned.type" || ev.Source() != "urn:interned-test" || ev.DataContentType() != "application/json" ||
		ev.Extensions()["ext"] != "interned-ext" {
		t.Errorf("attributes changed with the body: %s", ev.String())
	}
}

// TestDecodeDataGrammar checks that Decode and Encode take the data json.Valid
// takes, no more and no less, where the shared scanner has edges: numbers
// too big for a float64 (valid JSON, which the codec carries as it is),
// strings with escapes and bytes past ASCII after the first eight, and
// nesting past the 64 levels the scanner keeps in a word.
func TestDecodeDataGrammar(t *testing.T) {
	tests := []struct {
		name string
		data string
	}{
		{"number past float64", `{"n":1e400,"m":-` + strings.Repeat("9", 400) + `}`},
		{"long strings", "[\"0123456789\\u00e9\\n\xff\xc3\xa9\",\"0123456789abcdef\\\"\"]"},
		{"nested 80 deep", strings.Repeat(`[{"a":`, 40) + `1` + strings.Repeat(`}]`, 40)},
		{"nested 80 deep, closed crosswise", strings.Repeat(`[{"a":`, 40) + `1` + strings.Repeat(`]}`, 40)},
		{"control byte after eight", "\"0123456789\x01\""},
		{"escape cut after eight", `"0123456789\u00e"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := []byte(`{"specversion":"1.0","id":"1","source":"urn:x","type":"t","datacontenttype":"application/json","data":` + tt.data + `}`)
			valid := json.Valid([]byte(tt.data))
			ev, err := Decode(body)
			if (err == nil) != valid {
				t.Fatalf("Decode: error %v, want error %t (json.Valid)", err, !valid)
			}
			if !valid {
				return
			}
			if got := string(ev.Data()); got != tt.data {
				t.Fatalf("Decode data: got %q, want %q", got, tt.data)
			}
			m, err := Encode("s", &ev, "")
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			back, err := Decode(m.Data)
			if err != nil || string(back.Data()) != tt.data {
				t.Fatalf("Decode(Encode): got (%q, %v), want (%q, nil)", back.Data(), err, tt.data)
			}
		})
	}
}
