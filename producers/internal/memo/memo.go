// Package memo keeps what a function computes of a string, for the first
// strings seen only, so that memory stays bounded whatever the input: the
// per-event work of a source (a subject token, a parsed source URL) is done
// once for the few values it keeps meeting.
package memo

import (
	"sync"
	"sync/atomic"
)

// MaxKeyLen bounds the length of a key worth keeping.
const MaxKeyLen = 256

// Table maps strings to what compute gave for them, for at most Max
// strings of at most MaxKeyLen bytes: the first ones seen. Later strings
// are computed each time. Reads take no lock and allocate nothing; each
// new entry copies the map, which happens at most Max times. The zero
// Table keeps nothing; a Table must not be copied after first use.
type Table[T any] struct {
	Max int

	m  atomic.Pointer[map[string]T]
	mu sync.Mutex
}

// Get returns compute(key), from the table when it holds key. compute
// must be a pure function of key.
func (t *Table[T]) Get(key string, compute func(string) T) T {
	if m := t.m.Load(); m != nil {
		if v, ok := (*m)[key]; ok {
			return v
		}
	}
	v := compute(key)
	if len(key) > MaxKeyLen {
		return v
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.m.Load()
	if old == nil {
		old = new(map[string]T)
	}
	if len(*old) >= t.Max {
		return v
	}
	m := make(map[string]T, len(*old)+1)
	for k, e := range *old {
		m[k] = e
	}
	m[key] = v
	t.m.Store(&m)
	return v
}

// Len returns the number of strings kept.
func (t *Table[T]) Len() int {
	if m := t.m.Load(); m != nil {
		return len(*m)
	}
	return 0
}
