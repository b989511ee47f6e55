package config

//go:generate go run ./gen docs
//go:generate go run ./gen tables ../../docs/configuration.md

import (
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/vrelay/vrelay/consumers/httpsink"
	"github.com/vrelay/vrelay/consumers/logsink"
	"github.com/vrelay/vrelay/internal/names"
	"github.com/vrelay/vrelay/internal/secret"
	"github.com/vrelay/vrelay/producers/horizon"
	"github.com/vrelay/vrelay/producers/vcenter"
)

// SchemaID is the $id of the config file's JSON Schema.
const SchemaID = "https://vrelay.dev/schemas/config.json"

// DurationPattern is what a duration field accepts: Go's time.ParseDuration
// syntax, such as "500ms", "1h30m" or "0", without days.
const DurationPattern = `^[-+]?(0|(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$`

// namePattern is what internal/names accepts for source and route names.
var namePattern = fmt.Sprintf("^[A-Za-z0-9_-]{1,%d}$", names.MaxLen)

// enums lists the values a string field takes where the code has a fixed
// set, keyed like fieldDocs (`<package path>.<Type>.<Field>`). Source and
// sink types come from the table of kinds.
var enums = map[string][]string{
	key[logsink.Config]("Output"):          {logsink.OutputStdout, logsink.OutputStderr},
	key[logsink.Config]("Format"):          {logsink.FormatJSON, logsink.FormatLine},
	key[httpsink.Config]("Mode"):           {httpsink.ModeBinary, httpsink.ModeStructured},
	key[vcenter.Config]("Format"):          {string(vcenter.FormatTanzu), string(vcenter.FormatRouter)},
	key[vcenter.Config]("PayloadEncoding"): {vcenter.EncodingJSON, vcenter.EncodingXML},
	key[horizon.Config]("Format"):          {string(horizon.FormatTanzu), string(horizon.FormatRouter)},
}

func key[T any](field string) string {
	t := reflect.TypeFor[T]()
	return t.PkgPath() + "." + t.Name() + "." + field
}

var (
	durationType = reflect.TypeFor[time.Duration]()
	secretType   = reflect.TypeFor[secret.Ref]()
	sourceType   = reflect.TypeFor[Source]()
	sinkType     = reflect.TypeFor[Sink]()
	requiredMark = regexp.MustCompile(`(^|[.:] )Required[.:]`)
	defaultMark  = regexp.MustCompile(`(^|\. )Default:? (.+?)\.(\s|$)`)
)

// Schema returns the JSON Schema (draft 2020-12) of the config file, built
// from the config types, their doc comments and the table of kinds. A
// source or sink is oneOf its kinds, told apart by `type`.
func Schema() ([]byte, error) {
	g := &schemaGen{defs: map[string]any{}}
	root := g.object(reflect.TypeFor[Config]())
	root["$schema"] = "https://json-schema.org/draft/2020-12/schema"
	root["$id"] = SchemaID
	root["title"] = "vrelay configuration"
	root["$defs"] = g.defs
	return json.MarshalIndent(root, "", "  ")
}

type schemaGen struct {
	defs map[string]any
}

// defName names the $defs entry of a struct type: `logsink.Config`.
func defName(t reflect.Type) string {
	p := t.PkgPath()
	return p[strings.LastIndex(p, "/")+1:] + "." + t.Name()
}

// ref returns a reference to the definition of struct t, adding it once.
func (g *schemaGen) ref(t reflect.Type) map[string]any {
	name := defName(t)
	if _, ok := g.defs[name]; !ok {
		g.defs[name] = nil // placeholder: recursion stops here
		g.defs[name] = g.object(t)
	}
	return map[string]any{"$ref": "#/$defs/" + name}
}

// object is the schema of struct t: its yaml fields, no others.
func (g *schemaGen) object(t reflect.Type) map[string]any {
	s := map[string]any{"type": "object", "additionalProperties": false}
	if d := typeDocs[t.PkgPath()+"."+t.Name()]; d != "" {
		s["description"] = d
	}
	props := map[string]any{}
	var required []string
	for _, f := range yamlFields(t) {
		fs := g.value(f.Type)
		k := t.PkgPath() + "." + t.Name() + "." + f.Name
		if vals, ok := enums[k]; ok {
			fs["enum"] = vals
		}
		if k == key[Source]("Name") || k == key[Route]("Name") {
			fs["pattern"] = namePattern
		}
		doc := fieldDocs[k]
		if doc != "" {
			fs["description"] = doc
		}
		// A default written as a quoted string, `Default "30s".`, is
		// exactly the value; others are prose.
		if m := defaultMark.FindStringSubmatch(doc); m != nil && fs["type"] == "string" {
			if v, err := strconv.Unquote(m[2]); err == nil {
				fs["default"] = v
			}
		}
		if requiredMark.MatchString(doc) {
			required = append(required, f.tag)
		}
		props[f.tag] = fs
	}
	switch t {
	case sourceType:
		required = append(required, "name", "type")
		g.kinds(s, props, kindsOf(sourceKinds, func(k SourceKind) (string, bool) { return k.Type, k.required }))
	case sinkType:
		required = append(required, "type")
		g.kinds(s, props, kindsOf(sinkKinds, func(k SinkKind) (string, bool) { return k.Type, k.required }))
	}
	switch t {
	case reflect.TypeFor[Route]():
		required = append(required, "name", "sink")
	case reflect.TypeFor[NATS]():
		s["maxProperties"] = 1 // embedded or external, never both
	}
	s["properties"] = props
	if len(required) > 0 {
		s["required"] = dedupe(required)
	}
	return s
}

type kindInfo struct {
	typ      string
	required bool
}

func kindsOf[K any](ks []K, f func(K) (string, bool)) []kindInfo {
	out := make([]kindInfo, len(ks))
	for i, k := range ks {
		out[i].typ, out[i].required = f(k)
	}
	return out
}

// kinds makes `type` an enum and adds one oneOf branch per kind: its type,
// its section (required when the kind has no usable defaults), and none of
// the other kinds' sections.
func (g *schemaGen) kinds(s, props map[string]any, ks []kindInfo) {
	types := make([]string, len(ks))
	for i, k := range ks {
		types[i] = k.typ
	}
	props["type"].(map[string]any)["enum"] = types
	var branches []any
	for _, k := range ks {
		bp := map[string]any{"type": map[string]any{"const": k.typ}}
		for _, other := range ks {
			if other.typ != k.typ {
				bp[other.typ] = false
			}
		}
		b := map[string]any{"title": k.typ, "properties": bp}
		req := []string{"type"}
		if k.required {
			req = append(req, k.typ)
		}
		b["required"] = req
		branches = append(branches, b)
	}
	s["oneOf"] = branches
}

// value is the schema of a field of type t.
func (g *schemaGen) value(t reflect.Type) map[string]any {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == durationType:
		return map[string]any{"type": "string", "pattern": DurationPattern}
	case t == secretType:
		return map[string]any{"$ref": "#/$defs/" + g.secret()}
	}
	switch t.Kind() {
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Slice:
		return map[string]any{"type": "array", "items": g.value(t.Elem())}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": g.value(t.Elem())}
	case reflect.Struct:
		return g.ref(t)
	}
	return map[string]any{} // any value (an EventBridge pattern)
}

// secret adds the definition of a secret reference: exactly one of
// fromEnv and fromFile.
func (g *schemaGen) secret() string {
	const name = "secret"
	if _, ok := g.defs[name]; ok {
		return name
	}
	one := func(field, doc string) map[string]any {
		return map[string]any{
			"type":                 "object",
			"additionalProperties": false,
			"required":             []string{field},
			"properties":           map[string]any{field: map[string]any{"type": "string", "minLength": 1, "description": doc}},
		}
	}
	g.defs[name] = map[string]any{
		"description": "A secret, named rather than written: {fromEnv: VAR} or {fromFile: /path}. Never the secret itself.",
		"oneOf": []any{
			one("fromEnv", fieldDocs[key[secret.Ref]("FromEnv")]),
			one("fromFile", fieldDocs[key[secret.Ref]("FromFile")]),
		},
	}
	return name
}

// yamlField is one field of a config struct as YAML names it.
type yamlField struct {
	reflect.StructField
	tag string
}

// yamlFields lists the fields of struct t that YAML reads, in order.
func yamlFields(t reflect.Type) []yamlField {
	var out []yamlField
	for i := range t.NumField() {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || tag == "-" {
			continue
		}
		if tag == "" {
			tag = strings.ToLower(f.Name)
		}
		out = append(out, yamlField{f, tag})
	}
	return out
}

func dedupe(s []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}
