package memo

import (
	"strconv"
	"strings"
	"sync"
	"testing"
)

// TestTableFull: once full, the table keeps what it has and still returns
// the right value for every new key, computed each time.
func TestTableFull(t *testing.T) {
	tab := Table[string]{Max: 4}
	calls := map[string]int{}
	var mu sync.Mutex
	f := func(s string) string {
		mu.Lock()
		calls[s]++
		mu.Unlock()
		return "v" + s
	}
	for round := range 3 {
		for i := range 10 {
			k := strconv.Itoa(i)
			if got := tab.Get(k, f); got != "v"+k {
				t.Fatalf("round %d: Get(%q) = %q, want %q", round, k, got, "v"+k)
			}
		}
	}
	if tab.Len() != 4 {
		t.Errorf("got %d kept, want 4", tab.Len())
	}
	for i := range 10 {
		k := strconv.Itoa(i)
		want := 1
		if i >= 4 {
			want = 3
		}
		if calls[k] != want {
			t.Errorf("key %q computed %d times, want %d", k, calls[k], want)
		}
	}
}

// TestTableLongKey: a key longer than MaxKeyLen is not kept.
func TestTableLongKey(t *testing.T) {
	tab := Table[int]{Max: 4}
	long := strings.Repeat("x", MaxKeyLen+1)
	if got := tab.Get(long, func(s string) int { return len(s) }); got != MaxKeyLen+1 {
		t.Fatalf("got %d", got)
	}
	if tab.Len() != 0 {
		t.Errorf("got %d kept, want 0", tab.Len())
	}
}

// TestTableConcurrent: concurrent readers and writers (run with -race).
func TestTableConcurrent(t *testing.T) {
	tab := Table[string]{Max: 16}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				k := strconv.Itoa((i + g) % 32)
				if got := tab.Get(k, func(s string) string { return s + "!" }); got != k+"!" {
					t.Errorf("Get(%q) = %q", k, got)
					return
				}
			}
		})
	}
	wg.Wait()
	if tab.Len() != 16 {
		t.Errorf("got %d kept, want 16", tab.Len())
	}
}
