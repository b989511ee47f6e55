package horizontest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// filterExpr is one node of a Horizon filter: the JSON a client URL-encodes
// into the filter parameter, such as
// {"type":"Between","name":"time","fromValue":1,"toValue":2} or
// {"type":"And","filters":[...]}.
type filterExpr struct {
	Type      string          `json:"type"`
	Name      string          `json:"name"`
	Value     json.RawMessage `json:"value"`
	FromValue json.RawMessage `json:"fromValue"`
	ToValue   json.RawMessage `json:"toValue"`
	Filters   []filterExpr    `json:"filters"`
}

// parseFilter decodes a filter parameter.
func parseFilter(s string) (filterExpr, error) {
	var f filterExpr
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return filterExpr{}, fmt.Errorf("not a filter object: %v", err)
	}
	if dec.More() {
		return filterExpr{}, errors.New("data after the filter object")
	}
	return f, nil
}

// compile turns a filter into a predicate, or says what is wrong with it.
func (f filterExpr) compile() (func(Event) bool, error) {
	switch f.Type {
	case "And", "Or":
		if len(f.Filters) == 0 {
			return nil, fmt.Errorf("%s needs filters", f.Type)
		}
		subs := make([]func(Event) bool, len(f.Filters))
		for i, sub := range f.Filters {
			m, err := sub.compile()
			if err != nil {
				return nil, err
			}
			subs[i] = m
		}
		if f.Type == "And" {
			return func(ev Event) bool {
				for _, m := range subs {
					if !m(ev) {
						return false
					}
				}
				return true
			}, nil
		}
		return func(ev Event) bool {
			for _, m := range subs {
				if m(ev) {
					return true
				}
			}
			return false
		}, nil
	case "Equals", "NotEquals":
		get, ok := fields[f.Name]
		if !ok {
			return nil, fmt.Errorf("%s on unknown field %q", f.Type, f.Name)
		}
		want, err := scalar(f.Value)
		if err != nil {
			return nil, fmt.Errorf("%s on %s: value %v", f.Type, f.Name, err)
		}
		eq := f.Type == "Equals"
		return func(ev Event) bool { return (get(ev) == want) == eq }, nil
	case "Between":
		get, ok := numbers[f.Name]
		if !ok {
			return nil, fmt.Errorf("a Between filter on %q is not supported (use time or id)", f.Name)
		}
		from, err := integer(f.FromValue)
		if err != nil {
			return nil, fmt.Errorf("the Between filter on %s: fromValue %v", f.Name, err)
		}
		to, err := integer(f.ToValue)
		if err != nil {
			return nil, fmt.Errorf("the Between filter on %s: toValue %v", f.Name, err)
		}
		if from > to {
			return nil, fmt.Errorf("the Between filter on %s: fromValue %d is after toValue %d", f.Name, from, to)
		}
		return func(ev Event) bool { v := get(ev); return from <= v && v <= to }, nil
	case "":
		return nil, errors.New("a filter needs a type")
	default:
		return nil, fmt.Errorf("unsupported filter type %q", f.Type)
	}
}

var numbers = map[string]func(Event) int64{
	"time": func(ev Event) int64 { return ev.Time },
	"id":   func(ev Event) int64 { return ev.ID },
}

// fields renders each filterable field as a string, numbers in decimal.
var fields = map[string]func(Event) string{
	"id":                    func(ev Event) string { return strconv.FormatInt(ev.ID, 10) },
	"time":                  func(ev Event) string { return strconv.FormatInt(ev.Time, 10) },
	"type":                  func(ev Event) string { return ev.Type },
	"severity":              func(ev Event) string { return ev.Severity },
	"module":                func(ev Event) string { return ev.Module },
	"machine_dns_name":      func(ev Event) string { return ev.MachineDNSName },
	"user_id":               func(ev Event) string { return ev.UserID },
	"machine_id":            func(ev Event) string { return ev.MachineID },
	"desktop_pool_name":     func(ev Event) string { return ev.DesktopPoolName },
	"application_pool_name": func(ev Event) string { return ev.ApplicationPoolName },
}

// integer reads a JSON integer (a number without fraction or exponent).
func integer(raw json.RawMessage) (int64, error) {
	if len(raw) == 0 {
		return 0, errors.New("is missing")
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("must be an integer, got %s", raw)
	}
	return n, nil
}

// scalar reads a JSON string or integer as the string fields compares.
func scalar(raw json.RawMessage) (string, error) {
	if len(raw) == 0 {
		return "", errors.New("is missing")
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	n, err := integer(raw)
	if err != nil {
		return "", errors.New("must be a string or an integer")
	}
	return strconv.FormatInt(n, 10), nil
}
