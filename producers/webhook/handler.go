package webhook

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/binding/format"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/nats-io/nats.go"

	"github.com/vrelay/vrelay/producers"
	"github.com/vrelay/vrelay/streams"
)

// Handler returns the HTTP handler that [Source.Run] serves, for tests and
// for embedding in another server. It answers only where r.URL.Path equals
// Config.Path, so mount it at that path. It authenticates the request,
// decodes and validates every event, and calls pub.Publish once per request
// with all of them; it answers 200 only after Publish returned nil, and
// publishes nothing when the request has any problem. The package
// documentation lists the status codes. The handler is safe for concurrent
// use; pub must be too.
func (s *Source) Handler(pub producers.Publisher) http.Handler {
	return &handler{src: s, pub: pub}
}

type handler struct {
	src *Source
	pub producers.Publisher
}

// rejection is why a request was refused. reason is written to the sender
// and to the debug log, so it quotes headers at most (never Authorization),
// never the body beyond one character; detail, when set, may quote the body and goes to the
// sender only.
type rejection struct {
	code   int
	reason string
	detail string
	index  int // of the bad event in a batch, or -1
}

func reject(code int, msg string, args ...any) *rejection {
	return &rejection{code: code, reason: fmt.Sprintf(msg, args...), index: -1}
}

const (
	allowAll  = "POST, OPTIONS"
	realm     = `realm="vrelay"`
	mediaJSON = "application/json"
)

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.src.count(h.serve(w, r))
}

// serve answers r and returns the status code it wrote.
func (h *handler) serve(w http.ResponseWriter, r *http.Request) int {
	cfg := &h.src.cfg
	if r.URL.Path != cfg.Path {
		return h.reject(w, r, reject(http.StatusNotFound, "no webhook at path %q", r.URL.Path))
	}
	switch r.Method {
	case http.MethodPost:
	case http.MethodOptions:
		return h.options(w, r)
	default:
		w.Header().Set("Allow", allowAll)
		return h.reject(w, r, reject(http.StatusMethodNotAllowed, "method %s not allowed, use POST", r.Method))
	}
	if reason, ok := h.src.auth.check(r); !ok {
		if h.src.auth.basic {
			w.Header().Add("WWW-Authenticate", "Basic "+realm+`, charset="UTF-8"`)
		}
		if h.src.auth.bearer {
			w.Header().Add("WWW-Authenticate", "Bearer "+realm)
		}
		return h.reject(w, r, reject(http.StatusUnauthorized, "%s", reason))
	}

	evs, rej := h.read(w, r)
	if rej != nil {
		return h.reject(w, r, rej)
	}

	ctx, cancel := context.WithTimeout(r.Context(), cfg.PublishTimeout)
	defer cancel()
	if err := h.pub.Publish(ctx, producers.Records(evs...)...); err != nil {
		// An event that can never be stored is the sender's problem: say
		// which one and why, instead of inviting endless retries.
		var evErr *producers.EventError
		if errors.As(err, &evErr) {
			code := http.StatusBadRequest
			if errors.Is(err, nats.ErrMaxPayload) {
				code = http.StatusRequestEntityTooLarge
			}
			rej := &rejection{code: code, reason: "event cannot be stored", detail: evErr.Err.Error(), index: -1}
			if len(evs) > 1 {
				rej.index = evErr.Index
			}
			return h.reject(w, r, rej)
		}
		// A storage failure is logged once, where it is detected; a
		// request refused for it is not worth a line of its own.
		level := slog.LevelWarn
		if errors.Is(err, streams.ErrStorageFailing) {
			level = slog.LevelDebug
		}
		h.src.log.LogAttrs(r.Context(), level, "publish webhook events",
			slog.Int("events", len(evs)), slog.String("remote_addr", r.RemoteAddr), slog.Any("error", err))
		w.Header().Set("Retry-After", "1")
		return writeJSON(w, http.StatusServiceUnavailable,
			errorBody{Error: "events could not be stored, retry later"})
	}
	return writeAccepted(w, len(evs))
}

// options answers the CloudEvents webhook abuse-protection handshake
// (http-webhook.md §4): any origin may deliver, at any rate. It needs no
// credentials because it grants nothing: the spec says the handshake
// establishes no authorization, and every POST is still authenticated.
// A callback URL is ignored, never fetched, so a request cannot make us
// call an address of its choosing.
func (h *handler) options(w http.ResponseWriter, r *http.Request) int {
	origin := r.Header.Get("WebHook-Request-Origin")
	if origin == "" {
		w.Header().Set("Allow", allowAll)
		w.WriteHeader(http.StatusNoContent)
		return http.StatusNoContent
	}
	w.Header().Set("Allow", http.MethodPost)
	w.Header().Set("WebHook-Allowed-Origin", origin)
	w.Header().Set("WebHook-Allowed-Rate", "*")
	w.WriteHeader(http.StatusOK)
	h.src.log.LogAttrs(r.Context(), slog.LevelDebug, "webhook handshake",
		slog.String("origin", origin), slog.String("remote_addr", r.RemoteAddr))
	return http.StatusOK
}

// read decodes the events of r and validates each of them.
func (h *handler) read(w http.ResponseWriter, r *http.Request) ([]event.Event, *rejection) {
	max := h.src.cfg.MaxBodyBytes
	if r.ContentLength > max {
		return nil, reject(http.StatusRequestEntityTooLarge, "body of %d bytes is larger than maxBodyBytes (%d)", r.ContentLength, max)
	}

	// The encoding depends on the headers only, so decide it before reading.
	msg := cehttp.NewMessageFromHttpRequest(r)
	enc := msg.ReadEncoding()
	ct := r.Header.Get("Content-Type")
	mt := mediaType(ct)
	if format.IsFormat(mt) && enc != binding.EncodingStructured && enc != binding.EncodingBatch {
		// application/cloudevents+xml and the like: structured mode in a
		// format we cannot read (CloudEvents HTTP binding §3.2).
		return nil, reject(http.StatusUnsupportedMediaType,
			"unsupported event format %q, use application/cloudevents+json or application/cloudevents-batch+json", mt)
	}
	if enc == binding.EncodingUnknown {
		if v := r.Header.Get("Ce-Specversion"); v != "" {
			return nil, reject(http.StatusBadRequest, "unsupported ce-specversion %q", v)
		}
		return nil, reject(http.StatusBadRequest,
			"not a CloudEvent: no ce-specversion header and content type %q is not a CloudEvents format", mt)
	}

	if enc == binding.EncodingBinary && r.Header.Get("Ce-Datacontentencoding") != "" {
		// CloudEvents 0.3 meant it for data inside a JSON string; in binary
		// mode the body is the data. (The SDK would also apply it or fail
		// depending on the order in which it reads the headers.)
		return nil, reject(http.StatusBadRequest, "ce-datacontentencoding is not supported in binary mode: send the data bytes as the body")
	}
	body, err := readBody(w, r, max)
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, reject(http.StatusRequestEntityTooLarge, "body is larger than maxBodyBytes (%d)", max)
		}
		return nil, reject(http.StatusBadRequest, "read body: %v", err)
	}

	if enc == binding.EncodingBatch {
		return h.decodeBatch(body)
	}
	if enc == binding.EncodingStructured && !isObject(body) {
		return nil, reject(http.StatusBadRequest, "a structured-mode body must be a JSON object")
	}
	var ev *event.Event
	if enc == binding.EncodingStructured {
		if e, ok := fastDecode(body); ok {
			ev = &e
		}
	}
	if ev == nil {
		msg.BodyReader = io.NopCloser(bytes.NewReader(body))
		var err error
		if ev, err = binding.ToEvent(r.Context(), msg); err != nil {
			return nil, decodeError(err, body, enc == binding.EncodingBinary)
		}
	}
	if err := ev.Validate(); err != nil {
		return nil, validationError(err)
	}
	var rej *rejection
	if enc == binding.EncodingBinary {
		rej = badUTF8Headers(r.Header)
	} else {
		rej = badUTF8Members(body)
	}
	if rej != nil {
		return nil, rej
	}
	out, rej := prepare(*ev, enc != binding.EncodingBinary)
	if rej != nil {
		return nil, rej
	}
	return []event.Event{out}, nil
}

// fastDecode decodes a structured-mode event with [streams.Decode], which
// gives the event the SDK's JSON format gives for the same body in a
// quarter of the time. It reports false when the body does not decode, for
// the SDK to say why, and for data of a +json type other than JSON, which
// Decode reads as JSON and the SDK does not.
func fastDecode(body []byte) (event.Event, bool) {
	ev, err := streams.Decode(body)
	if err != nil {
		return event.Event{}, false
	}
	if mt := mediaType(ev.DataContentType()); strings.HasSuffix(mt, "+json") {
		return event.Event{}, false
	}
	return ev, true
}

// decodeStructured decodes one structured-mode event of a batch into ev.
func decodeStructured(raw []byte, ev *event.Event) error {
	if e, ok := fastDecode(raw); ok {
		*ev = e
		return nil
	}
	return format.JSON.Unmarshal(raw, ev)
}

// prepare turns a valid event into the one to store: CloudEvents 1.0 (a
// 0.3 event is upgraded, its base64 data decoded) and, for an event that
// came in a structured-mode JSON body, JSON data without the white space
// around it, which belongs to the envelope (the SDK keeps the white space
// before the value).
func prepare(ev event.Event, structured bool) (event.Event, *rejection) {
	ev, err := streams.UpgradeV1(ev)
	if err != nil {
		// The error may quote an extension name from the body.
		rej := reject(http.StatusBadRequest, "invalid event: not convertible to CloudEvents 1.0")
		rej.detail = err.Error()
		return ev, rej
	}
	if structured && !ev.DataBase64 && len(ev.DataEncoded) > 0 && isJSONType(mediaType(ev.DataContentType())) {
		ev.DataEncoded = bytes.Trim(ev.DataEncoded, jsonSpace)
	}
	return ev, nil
}

// jsonSpace is the white space JSON allows between tokens.
const jsonSpace = " \t\r\n"

// isJSONType reports whether a media type says JSON by the data rules of
// [streams.MarshalEvent]: absent, application/json, text/json or +json.
func isJSONType(mt string) bool {
	return mt == "" || mt == "application/json" || mt == "text/json" || strings.HasSuffix(mt, "+json")
}

// badUTF8Headers names the first attribute whose binary-mode header is not
// UTF-8: headers may carry any byte, and a CloudEvents attribute is text.
func badUTF8Headers(h http.Header) *rejection {
	var bad []string
	for k, v := range h {
		if len(v) == 0 || utf8.ValidString(v[0]) {
			continue
		}
		switch k = strings.ToLower(k); {
		case k == "content-type":
			bad = append(bad, "datacontenttype")
		case strings.HasPrefix(k, "ce-"):
			bad = append(bad, k[len("ce-"):])
		}
	}
	if len(bad) == 0 {
		return nil
	}
	return reject(http.StatusBadRequest, "invalid attribute %q: not valid UTF-8", slices.Min(bad))
}

// knownMembers are the members of a structured event whose names a reason
// may quote; an extension's name comes from the body and goes to detail.
var knownMembers = map[string]bool{
	"specversion": true, "id": true, "source": true, "type": true, "subject": true, "time": true,
	"datacontenttype": true, "dataschema": true, "schemaurl": true, "datacontentencoding": true,
	"data": true, "data_base64": true,
}

// badUTF8Members names the first member of a structured event whose value
// is not UTF-8, which JSON requires.
func badUTF8Members(obj []byte) *rejection {
	if utf8.Valid(obj) {
		return nil
	}
	var m map[string]json.RawMessage
	_ = json.Unmarshal(obj, &m) // the event decoded already
	for _, name := range slices.Sorted(maps.Keys(m)) {
		if utf8.Valid(m[name]) {
			continue
		}
		switch {
		case name == "data":
			return reject(http.StatusBadRequest, "invalid data: not valid UTF-8; send binary data as data_base64")
		case knownMembers[name]:
			return reject(http.StatusBadRequest, "invalid attribute %q: not valid UTF-8", name)
		}
		rej := reject(http.StatusBadRequest, "invalid extension: not valid UTF-8")
		rej.detail = fmt.Sprintf("extension %q", name)
		return rej
	}
	return reject(http.StatusBadRequest, "invalid JSON: not valid UTF-8")
}

// decodeBatch decodes a JSON array of structured-mode events. It splits the
// array itself instead of calling cehttp.NewEventsFromHTTPRequest, which
// decodes the whole array at once and so cannot say which event is bad; each
// element then goes through the SDK's own JSON format.
func (h *handler) decodeBatch(body []byte) ([]event.Event, *rejection) {
	var raws []json.RawMessage
	if err := json.Unmarshal(body, &raws); err != nil {
		if _, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
			return nil, reject(http.StatusBadRequest, "a batch body must be a JSON array of events")
		}
		return nil, decodeError(err, body, false)
	}
	if len(raws) == 0 {
		return nil, reject(http.StatusBadRequest, "empty batch")
	}
	if max := h.src.cfg.MaxBatchEvents; len(raws) > max {
		return nil, reject(http.StatusBadRequest, "batch of %d events is larger than maxBatchEvents (%d)", len(raws), max)
	}
	evs := make([]event.Event, len(raws))
	for i, raw := range raws {
		var rej *rejection
		if !isObject(raw) {
			rej = reject(http.StatusBadRequest, "not a JSON object")
		} else if err := decodeStructured(raw, &evs[i]); err != nil {
			rej = decodeError(err, raw, false)
		} else if err := evs[i].Validate(); err != nil {
			rej = validationError(err)
		} else if rej = badUTF8Members(raw); rej == nil {
			evs[i], rej = prepare(evs[i], true)
		}
		if rej != nil {
			rej.reason = fmt.Sprintf("batch event %d: %s", i, rej.reason)
			rej.index = i
			return nil, rej
		}
	}
	return evs, nil
}

// exactRead is the largest declared length read into a buffer of that
// size at once. A larger body grows its buffer as bytes arrive, so a client
// cannot make us allocate maxBodyBytes with headers alone.
const exactRead = 64 << 10

func readBody(w http.ResponseWriter, r *http.Request, max int64) ([]byte, error) {
	body := http.MaxBytesReader(w, r.Body, max)
	if r.ContentLength < 0 || r.ContentLength > exactRead {
		return io.ReadAll(body)
	}
	// The server ends the body at Content-Length.
	b := make([]byte, r.ContentLength)
	_, err := io.ReadFull(body, b)
	return b, err
}

// decodeError describes an error of the SDK decoder. In binary mode the
// error quotes only headers; in structured mode it may quote the body, so
// it goes to detail.
func decodeError(err error, body []byte, binary bool) *rejection {
	if se, ok := errors.AsType[*json.SyntaxError](err); ok {
		return reject(http.StatusBadRequest, "invalid JSON at byte %d: %v", se.Offset, se)
	}
	if ve, ok := errors.AsType[event.ValidationError](err); ok {
		// The SDK says "no specversion" and "unknown value" alike.
		if _, bad := ve["specversion"]; bad && !binary && !hasKey(body, "specversion") {
			return reject(http.StatusBadRequest, "missing required attribute %q", "specversion")
		}
		return validationError(err)
	}
	if binary {
		return reject(http.StatusBadRequest, "invalid binary-mode event: %v", err)
	}
	rej := reject(http.StatusBadRequest, "invalid structured-mode event")
	rej.detail = err.Error()
	return rej
}

// validationError names each bad attribute, in a stable order: the SDK's
// [event.ValidationError] is a map and prints in random order.
func validationError(err error) *rejection {
	ve, ok := errors.AsType[event.ValidationError](err)
	if !ok {
		return reject(http.StatusBadRequest, "invalid event: %v", err)
	}
	var missing, parts []string
	for _, attr := range slices.Sorted(maps.Keys(ve)) {
		switch attr {
		case "id", "source", "type":
			// Validate fails these only when they are empty.
			missing = append(missing, strconv.Quote(attr))
		default:
			parts = append(parts, fmt.Sprintf("invalid attribute %q: %v", attr, ve[attr]))
		}
	}
	switch len(missing) {
	case 0:
	case 1:
		parts = slices.Insert(parts, 0, "missing required attribute "+missing[0])
	default:
		parts = slices.Insert(parts, 0, "missing required attributes "+strings.Join(missing, ", "))
	}
	return reject(http.StatusBadRequest, "%s", strings.Join(parts, "; "))
}

// mediaType returns the lower-cased media type of a Content-Type value,
// without parameters.
func mediaType(ct string) string {
	mt, _, _ := strings.Cut(ct, ";")
	return strings.ToLower(strings.TrimSpace(mt))
}

// hasKey reports whether the JSON object obj has key, spelled exactly so.
func hasKey(obj []byte, key string) bool {
	var m map[string]json.RawMessage
	if json.Unmarshal(obj, &m) != nil {
		return false
	}
	_, ok := m[key]
	return ok
}

func isObject(b []byte) bool {
	b = bytes.TrimLeft(b, " \t\r\n")
	return len(b) > 0 && b[0] == '{'
}

func (h *handler) reject(w http.ResponseWriter, r *http.Request, rej *rejection) int {
	attrs := []slog.Attr{
		slog.Int("status", rej.code),
		slog.String("reason", rej.reason),
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
		slog.String("remote_addr", r.RemoteAddr),
	}
	h.src.log.LogAttrs(r.Context(), slog.LevelDebug, "rejected webhook request", attrs...)
	body := errorBody{Error: rej.reason}
	if rej.detail != "" {
		body.Error += ": " + rej.detail
	}
	if rej.index >= 0 {
		body.Index = &rej.index
	}
	return writeJSON(w, rej.code, body)
}

type errorBody struct {
	Error string `json:"error"`
	// Index is the position of the bad event in a batch.
	Index *int `json:"index,omitempty"`
}

func writeJSON(w http.ResponseWriter, code int, v any) int {
	b, err := json.Marshal(v)
	if err != nil { // cannot happen for errorBody
		b = []byte(`{"error":"internal error"}`)
	}
	b = append(b, '\n')
	w.Header().Set("Content-Type", mediaJSON)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write(b)
	return code
}

func writeAccepted(w http.ResponseWriter, n int) int {
	b := make([]byte, 0, 24)
	b = append(b, `{"accepted":`...)
	b = strconv.AppendInt(b, int64(n), 10)
	b = append(b, "}\n"...)
	w.Header().Set("Content-Type", mediaJSON)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
	return http.StatusOK
}

// check reports whether r carries accepted credentials, and if not, why.
// A nil authenticator accepts everything.
func (a *authenticator) check(r *http.Request) (string, bool) {
	if a == nil {
		return "", true
	}
	authz := r.Header.Get("Authorization")
	if authz == "" {
		return "missing credentials", false
	}
	scheme, rest, _ := strings.Cut(authz, " ")
	switch {
	case a.basic && strings.EqualFold(scheme, "Basic"):
		user, pw, ok := r.BasicAuth()
		if !ok {
			return "malformed basic credentials", false
		}
		u, p := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(pw))
		// & rather than &&: both comparisons always run.
		if subtle.ConstantTimeCompare(u[:], a.user[:])&subtle.ConstantTimeCompare(p[:], a.password[:]) == 1 {
			return "", true
		}
		return "invalid credentials", false
	case a.bearer && strings.EqualFold(scheme, "Bearer"):
		t := sha256.Sum256([]byte(strings.TrimSpace(rest)))
		if subtle.ConstantTimeCompare(t[:], a.token[:]) == 1 {
			return "", true
		}
		return "invalid credentials", false
	}
	// Never quote the header: with a typo ("Bearer:tok") or no scheme at
	// all, what precedes the first space is the credential itself.
	return "unsupported authorization scheme (expected " + a.schemes() + ")", false
}

// schemes names the schemes a accepts, for a rejection that must not
// quote what the client sent.
func (a *authenticator) schemes() string {
	switch {
	case a.basic && a.bearer:
		return "Basic or Bearer"
	case a.basic:
		return "Basic"
	}
	return "Bearer"
}
