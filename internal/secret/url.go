package secret

import "strings"

// RedactURL returns raw with any user information of its authority
// ("user:password@") replaced by "[redacted]@", for error messages and logs
// that must name an address. Unlike [net/url.URL.Redacted] it works on a
// string that does not parse, which is just when a validation error quotes
// it; and it hides the user name as well, since a user who typed a URL
// with credentials may have put the secret in either half.
func RedactURL(raw string) string {
	start := 0
	if i := strings.Index(raw, "://"); i >= 0 {
		start = i + len("://")
	}
	end := len(raw)
	if i := strings.IndexAny(raw[start:], "/?#"); i >= 0 {
		end = start + i
	}
	at := strings.LastIndex(raw[start:end], "@")
	if at < 0 {
		return raw
	}
	return raw[:start] + "[redacted]" + raw[start+at:]
}
