package config

import (
	"bytes"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/vrelay/vrelay/consumers/eventbridge"
	"github.com/vrelay/vrelay/producers/webhook"
	"github.com/vrelay/vrelay/streams"
)

// The field tables of docs/configuration.md are generated between markers
// that name a section by its YAML path (a list is passed through, as in
// `routes.sink.log`; `top` is the top level):
//
//	<!-- BEGIN GENERATED: routes.sink.log -->
//	| Field | Type | Default | Meaning |
//	...
//	<!-- END GENERATED: routes.sink.log -->
//
// Each row comes from a field's doc comment: its `Default X.` sentence
// fills Default, `Required.` makes it required, and the rest is Meaning.
// A nested object is flattened into `tls.caFile` rows unless it, or a
// section of the same type, has a table of its own in the same page.
var (
	beginMarker = regexp.MustCompile(`<!-- BEGIN GENERATED: ([A-Za-z.]*) -->\n`)
	quoted      = regexp.MustCompile(`"([^"\s]*)"`)
)

const tableHeader = "| Field | Type | Default | Meaning |\n|---|---|---|---|\n"

// RenderTables returns md with every generated table rewritten from the
// config types' doc comments. It fails on a marker without its end or
// naming no section.
func RenderTables(md []byte) ([]byte, error) {
	paths := map[string]bool{}
	for _, m := range beginMarker.FindAllSubmatch(md, -1) {
		paths[sectionPath(string(m[1]))] = true
	}
	var out bytes.Buffer
	rest := md
	for {
		loc := beginMarker.FindSubmatchIndex(rest)
		if loc == nil {
			out.Write(rest)
			return out.Bytes(), nil
		}
		path := string(rest[loc[2]:loc[3]])
		out.Write(rest[:loc[1]])
		rest = rest[loc[1]:]
		end := []byte("<!-- END GENERATED: " + path + " -->")
		i := bytes.Index(rest, end)
		if i < 0 {
			return nil, fmt.Errorf("generated table %q has no %s", path, end)
		}
		if path == "" {
			return nil, fmt.Errorf("a generated table names no section (write top for the top level)")
		}
		t, err := sectionType(sectionPath(path))
		if err != nil {
			return nil, err
		}
		out.WriteString(tableHeader)
		for _, r := range tableRows(t, sectionPath(path), "", paths) {
			fmt.Fprintf(&out, "| `%s` | %s | %s | %s |\n", r.field, r.typ, cell(r.def), cell(r.meaning))
		}
		rest = rest[i:]
	}
}

// sectionPath is the YAML path a marker names: "" for `top`.
func sectionPath(marker string) string {
	if marker == "top" {
		return ""
	}
	return marker
}

// sectionType finds the struct type at a YAML path from Config.
func sectionType(path string) (reflect.Type, error) {
	t := reflect.TypeFor[Config]()
	if path == "" {
		return t, nil
	}
	for _, name := range strings.Split(path, ".") {
		var next reflect.Type
		for _, f := range yamlFields(t) {
			if f.tag == name {
				next = f.Type
			}
		}
		if next == nil {
			return nil, fmt.Errorf("generated table %q: no field %q in %s", path, name, t)
		}
		t = elem(next)
		if t.Kind() != reflect.Struct {
			return nil, fmt.Errorf("generated table %q: %s is not a section", path, name)
		}
	}
	return t, nil
}

// elem looks through pointers, lists and maps.
func elem(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
		t = t.Elem()
	}
	return t
}

type row struct{ field, typ, def, meaning string }

func tableRows(t reflect.Type, path, prefix string, tables map[string]bool) []row {
	var rows []row
	for _, f := range yamlFields(t) {
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		sub := strings.TrimPrefix(path+"."+prefix+f.tag, ".")
		if ft.Kind() == reflect.Struct && ft != secretType && !hasTable(tables, sub) && !tabled(tables, ft) {
			rows = append(rows, tableRows(ft, path, prefix+f.tag+".", tables)...)
			continue
		}
		def, meaning := splitDoc(f.Name, fieldDocs[t.PkgPath()+"."+t.Name()+"."+f.Name])
		if vals, ok := enums[t.PkgPath()+"."+t.Name()+"."+f.Name]; ok && !strings.Contains(meaning, "`"+vals[0]+"`") {
			meaning = strings.TrimSpace(meaning + " One of " + enumList(vals) + ".")
		}
		if k, ok := kindOf(t, f.tag); ok {
			// A kind's section: what the table of kinds says.
			def = "defaults below"
			if k.required {
				def = "required with `type: " + k.typ + "`"
			}
			meaning = strings.TrimSpace(meaning + " It may only be set when `type` is `" + k.typ + "`.")
		}
		if (t == sourceType || t == sinkType) && f.tag == "type" {
			meaning = strings.TrimSpace(meaning + " One of " + enumList(kindTypes(t)) + ".")
		}
		if def == "required" && prefix != "" {
			// Required within an optional object: auth.basic, ref.
			def = "required with `" + strings.TrimSuffix(prefix, ".") + "`"
		}
		typ := typeName(t, f.StructField, ft)
		if def == "none" && typ == "boolean" {
			def = "`false`"
		}
		rows = append(rows, row{field: prefix + f.tag, typ: typ, def: def, meaning: meaning})
	}
	return rows
}

// kindOf returns the kind whose section is field tag of Source or Sink.
func kindOf(t reflect.Type, tag string) (kindInfo, bool) {
	var ks []kindInfo
	switch t {
	case sourceType:
		ks = kindsOf(sourceKinds, func(k SourceKind) (string, bool) { return k.Type, k.required })
	case sinkType:
		ks = kindsOf(sinkKinds, func(k SinkKind) (string, bool) { return k.Type, k.required })
	}
	for _, k := range ks {
		if k.typ == tag {
			return k, true
		}
	}
	return kindInfo{}, false
}

// kindTypes lists the types of sources (t is Source) or sinks.
func kindTypes(t reflect.Type) []string {
	if t == sourceType {
		return kindList(sourceKinds, func(k SourceKind) string { return k.Type })
	}
	return kindList(sinkKinds, func(k SinkKind) string { return k.Type })
}

func kindList[K any](ks []K, typ func(K) string) []string {
	out := make([]string, len(ks))
	for i, k := range ks {
		out[i] = typ(k)
	}
	return out
}

// hasTable reports whether the section at path, or one inside it, has a
// table of its own: then its parent's table shows it as one object row.
func hasTable(tables map[string]bool, path string) bool {
	for p := range tables {
		if p == path || strings.HasPrefix(p, path+".") {
			return true
		}
	}
	return false
}

// tabled reports whether some table of the page shows struct t, so that
// another section of the same type (http.auth, like nats.embedded.auth)
// refers to it instead of repeating it.
func tabled(tables map[string]bool, t reflect.Type) bool {
	for p := range tables {
		if st, err := sectionType(p); err == nil && st == t {
			return true
		}
	}
	return false
}

// typeHints name the Type column where the Go type says less than the
// reference should, keyed like fieldDocs.
var typeHints = map[string]string{
	key[Source]("Name"):                         "name",
	key[Route]("Name"):                          "name",
	key[Route]("Transform"):                     "list of steps",
	key[HTTP]("Listen"):                         "address or `off`",
	key[streams.EmbeddedConfig]("Listen"):       "address or `off`",
	key[streams.EmbeddedConfig]("SyncInterval"): "duration or `always`",
	key[webhook.Config]("Listen"):               "address",
	key[eventbridge.Config]("Pattern"):          "EventBridge event pattern",
}

// typeName is the Type column of a field.
func typeName(owner reflect.Type, f reflect.StructField, t reflect.Type) string {
	if h, ok := typeHints[owner.PkgPath()+"."+owner.Name()+"."+f.Name]; ok {
		return h
	}
	switch {
	case t == durationType:
		return "duration"
	case t == secretType:
		return "secret"
	case strings.HasSuffix(f.Name, "Bytes"):
		return "integer (bytes)"
	case strings.HasSuffix(f.Name, "File") || strings.HasSuffix(f.Name, "Dir") || f.Name == "Kubeconfig":
		return "path"
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int64, reflect.Int32, reflect.Uint, reflect.Uint64, reflect.Uint32:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice:
		if e := elem(t); e.Kind() == reflect.String {
			return "list of strings"
		}
		return "list"
	case reflect.Map:
		return "map of strings"
	case reflect.Struct:
		return "object"
	}
	return "any"
}

var (
	defaultSentence  = regexp.MustCompile(`(^|[.)] |; )[Dd]efault:? (.+?)\.(\s|$)`)
	defaultInline    = regexp.MustCompile(`"([^"]+)" \((the )?default\b`)
	requiredSentence = regexp.MustCompile(`(^|\s)Required[.:](\s|$)`)
)

// splitDoc takes the default (or "required") out of a field's doc comment
// and turns the rest into table prose: "Output is the stream..." becomes
// "The stream...", and "x" becomes `x`.
func splitDoc(field, doc string) (def, meaning string) {
	def = "none"
	if m := defaultSentence.FindStringSubmatchIndex(doc); m != nil {
		def = doc[m[4]:m[5]]
		sep := ". "
		if m[0] == 0 {
			sep = ""
		}
		doc = strings.TrimSpace(doc[:m[0]] + sep + doc[m[1]:])
		if doc != "" && !strings.HasSuffix(doc, ".") {
			doc += "."
		}
	} else if m := defaultInline.FindStringSubmatch(doc); m != nil {
		def = `"` + m[1] + `"`
	}
	if m := requiredSentence.FindStringIndex(doc); m != nil {
		def = "required"
		doc = doc[:m[0]] + " " + upperFirst(strings.TrimSpace(doc[m[1]:]))
	}
	doc = strings.Join(strings.Fields(doc), " ")
	if rest, ok := strings.CutPrefix(doc, field+", "); ok {
		doc = upperFirst(rest) // "Auth, when set, protects" reads "When set, protects"
	} else if rest, ok := strings.CutPrefix(doc, field+" "); ok {
		// "Timeout bounds one attempt" reads "Bounds one attempt"; "Output
		// is the stream" reads "The stream".
		for _, verb := range []string{"is ", "are "} {
			rest = strings.TrimPrefix(rest, verb)
		}
		doc = upperFirst(rest)
	}
	def = strings.TrimSuffix(code(def), ".")
	if !strings.ContainsAny(def, " `") && def != "none" && def != "required" {
		def = "`" + def + "`"
	}
	return def, code(strings.TrimSpace(doc))
}

// code turns "x" into `x` outside code spans.
func code(s string) string {
	parts := strings.Split(s, "`")
	for i := 0; i < len(parts); i += 2 {
		parts[i] = quoted.ReplaceAllString(parts[i], "`$1`")
	}
	return strings.Join(parts, "`")
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	r, n := utf8.DecodeRuneInString(s)
	return string(unicode.ToUpper(r)) + s[n:]
}

func enumList(vals []string) string {
	q := make([]string, len(vals))
	for i, v := range vals {
		q[i] = "`" + v + "`"
	}
	if len(q) == 1 {
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}

// cell escapes a table cell: no line breaks, no bare pipes.
func cell(s string) string {
	s = strings.ReplaceAll(s, "\n\n", " ")
	return strings.ReplaceAll(s, "|", `\|`)
}
