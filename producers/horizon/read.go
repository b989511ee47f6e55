package horizon

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// defaultMaxRead bounds the events one read holds in memory, about 50 MB
// of records. A read that would hold more (after a long stop with a large
// maxAge) is narrowed to an earlier span of time and the rest read next.
const defaultMaxRead = 100_000

// errReadTooLarge: the read window holds more than maxRead events.
var errReadTooLarge = errors.New("read window holds too many events")

// badRecord is a record of an answer that the source cannot place.
type badRecord struct {
	raw []byte
	err error
}

// readPage returns one page of the events whose time lies in [from, to],
// newest first as Horizon sends them, and whether more pages follow.
func (c *client) readPage(ctx context.Context, from, to int64, page, size int) (evs []auditEvent, bad []badRecord, more bool, err error) {
	q := url.Values{}
	q.Set("filter", fmt.Sprintf(`{"type":"Between","name":"time","fromValue":%d,"toValue":%d}`, from, to))
	q.Set("page", strconv.Itoa(page))
	q.Set("size", strconv.Itoa(size))
	h, body, err := c.get(ctx, opRead, auditPath, q)
	if err != nil {
		return nil, nil, false, err
	}
	var records []json.RawMessage
	if err := json.Unmarshal(body, &records); err != nil {
		return nil, nil, false, fmt.Errorf("%s: the answer is not a JSON array: %w", opRead, err)
	}
	evs = make([]auditEvent, 0, len(records))
	for _, raw := range records {
		ev, err := parseRecord(raw)
		if err != nil {
			bad = append(bad, badRecord{raw: raw, err: err})
			continue
		}
		evs = append(evs, ev)
	}
	if v := h.Get(headerHasMore); v != "" {
		more = strings.EqualFold(strings.TrimSpace(v), "true")
	} else {
		// Without the header, a full page may have a successor.
		more = len(records) == size
	}
	return evs, bad, more, nil
}

// readWindow reads every event whose time lies in [from, to], page by
// page, and returns them in ascending (time, id) order, each once. A new
// event that Horizon stores while the pages are read pushes the older ones
// down a place, so a page can repeat the last events of the page before:
// events are kept by id. It fails with errReadTooLarge once it holds more
// than max events, unless the window is a single millisecond.
func (c *client) readWindow(ctx context.Context, from, to int64, size, max int) ([]auditEvent, []badRecord, error) {
	byID := make(map[int64]auditEvent)
	var bad []badRecord
	for page := 1; ; page++ {
		evs, b, more, err := c.readPage(ctx, from, to, page, size)
		if err != nil {
			return nil, nil, err
		}
		for _, ev := range evs {
			byID[ev.ID] = ev
		}
		bad = append(bad, b...)
		if len(byID) > max && to > from {
			return nil, nil, errReadTooLarge
		}
		if !more || len(evs)+len(b) == 0 {
			break
		}
	}
	out := slices.SortedFunc(maps.Values(byID), func(a, b auditEvent) int {
		if c := cmp.Compare(a.Time, b.Time); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return out, bad, nil
}
