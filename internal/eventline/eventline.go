package eventline

import (
	"encoding/json"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/event"
)

// Type prefixes and suffixes of the shapes vrelay produces (DESIGN.md §4).
const (
	vsphereTypePrefix   = "com.vmware.vsphere."
	horizonTypePrefix   = "com.vmware.horizon."
	routerVCenterType   = "com.vmware.event.router/event"
	routerHorizonPrefix = "com.vmware.event.router/horizon."
	versionSuffix       = ".v0"
	timeLayout          = "2006-01-02T15:04:05Z07:00"
	ansiReset           = "\x1b[0m"
	ansiDim             = "\x1b[2m"
	ansiBold            = "\x1b[1m"
	ansiCyan            = "\x1b[36m"
	ansiMagenta         = "\x1b[35m"
	ansiGreen           = "\x1b[32m"
	ansiYellow          = "\x1b[33m"
	ansiRed             = "\x1b[31m"
	maxMessageBytes     = 4096
	messageEllipsis     = "…"
)

// Style says how a line looks. The zero Style is plain text.
type Style struct {
	// Color adds ANSI colours: a dim time, a bold type (yellow for a
	// warning, red for an error), a cyan source, green subjects.
	Color bool
}

// fields are the parts of an event's data a line shows. encoding/json
// matches names without regard to case, so camelCase vCenter data (`vm`)
// reads as well as the PascalCase shape.
type fields struct {
	VM                   *named `json:"Vm"`
	Host                 *named `json:"Host"`
	UserName             string `json:"UserName"`
	FullFormattedMessage string `json:"FullFormattedMessage"`
	Message              string `json:"message"`
	Severity             string `json:"severity"`
	Type                 string `json:"type"`
	UserID               string `json:"user_id"`
	Machine              string `json:"machine_dns_name"`
}

type named struct {
	Name string `json:"Name"`
}

// Append appends the line of ev, without a newline, to dst. subject is the
// NATS subject ev was stored on, or "" when unknown.
func (s Style) Append(dst []byte, ev *event.Event, subject string) []byte {
	var f fields
	if data := ev.Data(); len(data) > 0 && data[0] == '{' {
		// A field of another JSON type leaves that field empty; the others
		// still decode.
		_ = json.Unmarshal(data, &f)
	}

	dst = s.paint(dst, ansiDim, timeOf(ev))
	dst = append(dst, ' ')
	typColor := ansiBold
	switch strings.ToLower(f.Severity) {
	case "warning":
		typColor = ansiBold + ansiYellow
	case "error", "fatal", "audit_fail":
		typColor = ansiBold + ansiRed
	}
	dst = s.paint(dst, typColor, ShortType(ev, f.Type))
	dst = append(dst, ' ')
	dst = s.paint(dst, ansiCyan, sourceName(ev, subject))

	for _, kv := range [...][2]string{
		{"vm", name(f.VM)}, {"host", name(f.Host)}, {"user", f.UserName},
		{"user", f.UserID}, {"machine", f.Machine},
	} {
		if kv[1] == "" {
			continue
		}
		dst = append(dst, ' ')
		dst = s.paint(dst, ansiGreen, kv[0]+"="+kv[1])
	}

	msg := f.FullFormattedMessage
	if msg == "" {
		msg = f.Message
	}
	if msg = strings.TrimSpace(msg); msg != "" {
		if len(msg) > maxMessageBytes {
			cut := maxMessageBytes
			for cut > 0 && !utf8.RuneStart(msg[cut]) {
				cut--
			}
			msg = msg[:cut] + messageEllipsis
		}
		dst = append(dst, ' ')
		dst = appendText(dst, msg)
	}
	return dst
}

// ShortType names the type of ev briefly: the vCenter event type
// (VmPoweredOnEvent, or an EventEx's id) for both vCenter shapes, the
// Horizon type as Horizon spells it (dataType, when the data has one), and
// the whole CloudEvent type otherwise.
func ShortType(ev *event.Event, dataType string) string {
	t := ev.Type()
	switch {
	case t == routerVCenterType && ev.Subject() != "":
		return ev.Subject()
	case strings.HasPrefix(t, vsphereTypePrefix) && strings.HasSuffix(t, versionSuffix):
		return strings.TrimSuffix(strings.TrimPrefix(t, vsphereTypePrefix), versionSuffix)
	case strings.HasPrefix(t, horizonTypePrefix), strings.HasPrefix(t, routerHorizonPrefix):
		if dataType != "" {
			return dataType
		}
		t = strings.TrimPrefix(strings.TrimPrefix(t, horizonTypePrefix), routerHorizonPrefix)
		return strings.ToUpper(strings.TrimSuffix(t, versionSuffix))
	}
	return t
}

// sourceName is the vrelay source of a subject `<root>.<provider>.<source>.<type>`,
// or the host of the CloudEvent source.
func sourceName(ev *event.Event, subject string) string {
	if tokens := strings.SplitN(subject, ".", 4); len(tokens) == 4 && tokens[2] != "" {
		return tokens[2]
	}
	src := ev.Source()
	if u, err := url.Parse(src); err == nil && u.Hostname() != "" {
		return u.Hostname()
	}
	if src == "" {
		return "-"
	}
	return src
}

func timeOf(ev *event.Event) string {
	if ev.Time().IsZero() {
		return "-"
	}
	return ev.Time().UTC().Truncate(time.Second).Format(timeLayout)
}

func name(n *named) string {
	if n == nil {
		return ""
	}
	return n.Name
}

// paint appends text (escaped) in colour c when s.Color is set.
func (s Style) paint(dst []byte, c, text string) []byte {
	if !s.Color {
		return appendText(dst, text)
	}
	dst = append(dst, c...)
	dst = appendText(dst, text)
	return append(dst, ansiReset...)
}

// appendText appends text with line breaks, tabs and other control
// characters escaped as Go does (\n, \x1b), and invalid UTF-8 as \ufffd.
func appendText(dst []byte, text string) []byte {
	for _, r := range text {
		switch {
		case r == '\n':
			dst = append(dst, `\n`...)
		case r == '\r':
			dst = append(dst, `\r`...)
		case r == '\t':
			dst = append(dst, `\t`...)
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			dst = append(dst, `\x`...)
			dst = append(dst, "0123456789abcdef"[r>>4], "0123456789abcdef"[r&0xf])
		default:
			dst = utf8.AppendRune(dst, r)
		}
	}
	return dst
}
