// Package jsonscan checks JSON text with exactly the grammar of
// encoding/json and finds where its values end, without decoding them. It
// is the one JSON scanner of vrelay: the CloudEvent codec (streams) checks
// bodies and finds the data member with it, and filters look up the data
// paths an expression reads with it.
//
// The contract:
//
//   - [Valid] reports what json.Valid reports, for every input: one value
//     with optional white space around it; strings may hold any byte from
//     0x20 up, invalid UTF-8 included, as json.Valid allows; objects and
//     arrays nest at most [MaxDepth] deep.
//   - [ValidAny] reports whether json.Unmarshal into an any succeeds:
//     what Valid accepts, less numbers outside float64's range (1e400).
//   - The functions that take an index (Value, AnyValue, String, Number,
//     Space) read b from b[i] on, return the index just past what they
//     read, or -1 when b does not hold that there. They never read before
//     i, allocate nothing for values nested fewer than 64 deep, and keep
//     no reference to b.
//
// The scanner reports where input is wrong, not why: a caller that needs
// encoding/json's message asks encoding/json for it, on the rare invalid
// input. It is a plain loop over the bytes, several times faster than
// encoding/json's scanner, which calls a state function per byte.
//
//	end := jsonscan.Value(b, i, 0)
//	if end < 0 {
//		// not one JSON value at b[i]
//	}
package jsonscan

import (
	"encoding/binary"
	"math/bits"
	"strconv"
)

// MaxDepth is encoding/json's limit on nested objects and arrays: a value
// nested deeper is invalid.
const MaxDepth = 10000

// Valid reports what json.Valid(b) reports.
func Valid(b []byte) bool {
	return whole(b, false)
}

// ValidAny reports whether json.Unmarshal(b, new(any)) succeeds: whether b
// is valid and every number in it fits a float64.
func ValidAny(b []byte) bool {
	return whole(b, true)
}

func whole(b []byte, floats bool) bool {
	i := Space(b, 0)
	if i = value(b, i, 0, floats); i < 0 {
		return false
	}
	return Space(b, i) == len(b)
}

// Value checks the JSON value that starts at b[i], with no white space
// before it, as json.Valid would if the value stood inside depth open
// objects or arrays, and returns the index just past it, or -1.
func Value(b []byte, i, depth int) int {
	return value(b, i, depth, false)
}

// AnyValue is [Value], but also rejects a value holding a number outside
// float64's range, as json.Unmarshal into an any does.
func AnyValue(b []byte, i, depth int) int {
	return value(b, i, depth, true)
}

func value(b []byte, i, depth int, floats bool) int {
	if i < 0 {
		return -1
	}
	// The open containers, innermost in bit 0: 1 for an object, 0 for an
	// array. The 64 innermost sit in open, the others in spill.
	var (
		open  uint64
		n     int
		spill []uint64
	)
	for {
		// A value starts at i.
		if i >= len(b) {
			return -1
		}
		switch c := b[i]; c {
		case '"':
			if i = String(b, i); i < 0 {
				return -1
			}
		case '{', '[':
			if depth+n >= MaxDepth {
				return -1
			}
			i = Space(b, i+1)
			if i < len(b) && b[i] == c+2 { // '}' or ']': empty
				i++
				break
			}
			if n >= 64 {
				spill = append(spill, open>>63)
			}
			open <<= 1
			n++
			if c == '{' {
				open |= 1
				if i = key(b, i); i < 0 {
					return -1
				}
			}
			continue
		case 't':
			if i = Literal(b, i, "true"); i < 0 {
				return -1
			}
		case 'f':
			if i = Literal(b, i, "false"); i < 0 {
				return -1
			}
		case 'n':
			if i = Literal(b, i, "null"); i < 0 {
				return -1
			}
		default:
			if i = number(b, i, floats); i < 0 {
				return -1
			}
		}
		// A value ended at i: close containers until the next value.
		for {
			if n == 0 {
				return i
			}
			if i < len(b) && b[i] > ' ' {
				// Most often the comma or bracket comes right away.
			} else if i = Space(b, i); i >= len(b) {
				return -1
			}
			if b[i] == ',' {
				i = Space(b, i+1)
				if open&1 != 0 {
					if i = key(b, i); i < 0 {
						return -1
					}
				}
				break
			}
			if b[i] != '}' && b[i] != ']' || (b[i] == '}') != (open&1 != 0) {
				return -1
			}
			i++
			open >>= 1
			n--
			if n >= 64 {
				open |= spill[len(spill)-1] << 63
				spill = spill[:len(spill)-1]
			}
		}
	}
}

// key skips `"key" :` and the white space after it, or returns -1.
func key(b []byte, i int) int {
	if i >= len(b) || b[i] != '"' {
		return -1
	}
	if i = String(b, i); i < 0 {
		return -1
	}
	if i < len(b) && b[i] == ':' {
		return Space(b, i+1)
	}
	if i = Space(b, i); i >= len(b) || b[i] != ':' {
		return -1
	}
	return Space(b, i+1)
}

// space marks JSON's four white space bytes.
var space = [256]bool{' ': true, '\t': true, '\n': true, '\r': true}

// Space returns the index of the first byte at or after i that is not
// JSON white space (space, tab, newline, carriage return), or len(b).
func Space(b []byte, i int) int {
	for i < len(b) && space[b[i]] {
		i++
	}
	return i
}

// plainByte marks the bytes a string holds as they are: not the quote, not
// the backslash, not a control character.
var plainByte = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// String checks the string whose opening quote is b[i] and returns the
// index just past its closing quote, or -1. Like json.Valid it checks
// escapes, not the UTF-8 of the bytes between them.
func String(b []byte, i int) int {
	if i < 0 || i >= len(b) || b[i] != '"' {
		return -1
	}
	i++
	for {
		// Eight bytes at a time to the next byte that is not plain, then
		// a byte at a time near the end of b.
		for {
			if i+8 > len(b) {
				for i < len(b) && plainByte[b[i]] {
					i++
				}
				break
			}
			if m := special(binary.LittleEndian.Uint64(b[i:])); m != 0 {
				i += bits.TrailingZeros64(m) >> 3
				break
			}
			i += 8
		}
		if i >= len(b) {
			return -1
		}
		switch c := b[i]; {
		case c == '"':
			return i + 1
		case c == '\\':
			if i+1 >= len(b) {
				return -1
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) || !isHex(b[i+2]) || !isHex(b[i+3]) || !isHex(b[i+4]) || !isHex(b[i+5]) {
					return -1
				}
				i += 6
			default:
				return -1
			}
		default: // a control character
			return -1
		}
	}
}

// StringPlain is [String], and also reports whether the string is plain:
// without escapes and all ASCII, so that the bytes between its quotes are
// its value as encoding/json decodes it.
func StringPlain(b []byte, i int) (end int, plain bool) {
	if i < 0 || i >= len(b) || b[i] != '"' {
		return -1, false
	}
	i++
	var seen uint64 // the bytes read, or-ed together: a high bit is not ASCII
	escaped := false
	for {
		for {
			if i+8 > len(b) {
				for i < len(b) && plainByte[b[i]] {
					seen |= uint64(b[i])
					i++
				}
				break
			}
			x := binary.LittleEndian.Uint64(b[i:])
			if m := special(x); m != 0 {
				n := bits.TrailingZeros64(m) >> 3
				seen |= x & (1<<(n*8) - 1) // the bytes before the special one
				i += n
				break
			}
			seen |= x
			i += 8
		}
		if i >= len(b) {
			return -1, false
		}
		switch c := b[i]; {
		case c == '"':
			return i + 1, !escaped && seen&highBits == 0
		case c == '\\':
			escaped = true
			if i+1 >= len(b) {
				return -1, false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) || !isHex(b[i+2]) || !isHex(b[i+3]) || !isHex(b[i+4]) || !isHex(b[i+5]) {
					return -1, false
				}
				i += 6
			default:
				return -1, false
			}
		default: // a control character
			return -1, false
		}
	}
}

const highBits = 0x8080808080808080

// special marks, with the high bit of each byte, the bytes of x (eight
// bytes of b, little-endian) that are a quote, a backslash or a control
// character (below 0x20). Marks above the first one may be wrong, as a
// borrow runs up from it; the first one, the lowest, is always right.
func special(x uint64) uint64 {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	ctl := (x - ones*0x20) &^ x
	q := x ^ (ones * '"')
	bs := x ^ (ones * '\\')
	return (ctl | (q-ones)&^q | (bs-ones)&^bs) & highs
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// Literal checks that the word lit (true, false or null) stands at b[i]
// and returns the index just past it, or -1.
func Literal(b []byte, i int, lit string) int {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return -1
	}
	return i + len(lit)
}

// Number checks the number at b[i] and returns the index just past it, or
// -1. The grammar is -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?; a
// number of any size is valid, as for json.Valid.
func Number(b []byte, i int) int {
	return number(b, i, false)
}

// number is Number; with floats set it also rejects a number outside
// float64's range.
func number(b []byte, i int, floats bool) int {
	start := i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		i = digits(b, i+1)
	default:
		return -1
	}
	if i < len(b) && b[i] == '.' {
		if i++; i >= len(b) || !isDigit(b[i]) {
			return -1
		}
		i = digits(b, i+1)
	}
	exp := false
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		if i++; i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			return -1
		}
		i = digits(b, i+1)
		exp = true
	}
	// Only an exponent or more than 308 digits reach past float64's range.
	if floats && (exp || i-start > 308) && !fitsFloat(b[start:i]) {
		return -1
	}
	return i
}

// fitsFloat reports whether the number n rounds to a finite float64.
func fitsFloat(n []byte) bool {
	_, err := strconv.ParseFloat(string(n), 64)
	return err == nil
}

func digits(b []byte, i int) int {
	for i < len(b) && isDigit(b[i]) {
		i++
	}
	return i
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
