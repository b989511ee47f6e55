// Package horizontest is a fake VMware Horizon Connection Server for tests:
// an [httptest.Server] on 127.0.0.1 that speaks the part of the Horizon
// Server REST API that an audit-event reader uses, as closely as public
// material describes it, and that can be made to fail in the ways the
// real API is known to. Other packages' tests import it; it is safe for
// concurrent use.
//
//	hz := horizontest.New(t)                 // TLS; hz.CAFile() verifies it
//	hz.Backlog(2500, 3, "VLSI_USERLOGGEDIN") // 2,500 past events, 3 per millisecond
//	hz.Throttle(2, 1)                        // next 2 audit reads: 429, retry after 1s
//	... run a client against hz.URL() ...
//	if c := hz.Counts(); c.Logins != 1 { ... } // tokens were reused
//
// # What it models
//
// Written from the public descriptions of the API (the View/Horizon Server
// REST API reference and its pagination and filter guide, as quoted by
// their users) and from the two public clients of it, the VMware Event
// Router's Horizon provider and Tanzu Sources for Knative's HorizonSource
// adapter:
//
//   - POST /rest/login {domain, username, password} answers 200
//     {access_token, refresh_token}; wrong credentials 401, a body without
//     domain, username or password 400. Domain and user name compare
//     without regard to case, the password exactly.
//   - Tokens look like Horizon's, JWTs whose payload has iat and exp, so a
//     client can refresh ahead of expiry. An access token lives
//     [WithTokenTTLs] (default 30 minutes), a refresh token 8 hours. A
//     request with a missing, unknown or expired access token gets 401.
//   - POST /rest/refresh {refresh_token} answers 200 {access_token}; an
//     expired or unknown refresh token gets 400, which tells the client to
//     log in again.
//   - POST /rest/logout {refresh_token} answers 200 and revokes the refresh
//     token and every access token issued under it; an unknown one gets 400.
//   - GET /rest/external/v1/audit-events returns a JSON array of
//     AuditEventSummary records, newest first. filter is URL-encoded JSON:
//     Between (inclusive on both ends, on time or id), Equals and NotEquals
//     on any field, And and Or of those. page (from 1) and size (1 to 1000)
//     select a page, and the HAS_MORE_RECORDS header says TRUE or FALSE.
//     Events sharing a millisecond come in ascending id order, as in the
//     recorded sample. A malformed filter, page or size gets 400.
//   - Errors carry the documented APIError body, {"error_key": ...,
//     "error_message": ...}.
//   - Events are added as they happen ([Server.AddN], several to a
//     millisecond), as a backlog from before a reader started
//     ([Server.Backlog]), or one by one ([Server.Add]), also late: with a
//     time older than events already stored, as a second Connection Server
//     might log them.
//   - Injected trouble on the audit-events endpoint: the next n requests
//     answered with a given status and headers ([Server.FailNext]; 409,
//     500, or 429 with X-Rate-Limit-Retry-After-Seconds as Horizon 2406 and
//     later throttle, [Server.Throttle]), or answered only after a delay
//     ([Server.SlowNext]). Tokens can be expired at once
//     ([Server.ExpireAccessTokens], [Server.ExpireRefreshTokens]) and the
//     password changed ([Server.SetPassword]).
//   - [Server.Counts] tells how many logins, refreshes, logouts and audit
//     requests it saw, so a test can check that tokens are reused.
//
// # What it does not model, or guesses
//
// Public material does not show everything; where it is silent the fake
// makes a plain choice, listed here so that nobody mistakes it for a fact:
//
//   - Error bodies: the APIError shape is documented, but the error_key
//     values here are made up, and whether a 401 or 429 carries a body at
//     all is not known.
//   - The status of a failed login (401 here; the Tanzu adapter's tests
//     assume 401), and of a Between whose fromValue exceeds its toValue (400
//     here; the real server may return an empty list).
//   - The default page size when a request names neither page nor size:
//     the fake then returns every match, without HAS_MORE_RECORDS. With
//     only one of them, the other defaults to page 1 or size 10.
//   - The real API's other filter types (Contains, StartsWith, Not, ...),
//     sort_by and sort_order, and the extended-attributes endpoint.
//   - The order of events sharing a millisecond is the database's; the
//     sample shows ascending ids, which the fake always uses.
//   - Throttling is injected, not counted: the fake has no per-minute
//     request budget of its own.
//   - Events are stored in memory with ids the fake assigns; events written
//     late with an older time can be added, but nothing models the delay
//     between a Connection Server logging an event and the event database
//     holding it.
//   - One pod, one Connection Server: no Cloud Pod Architecture, no
//     SAML/True SSO or two-factor login, no per-user permissions (any
//     logged-in user may read audit events).
package horizontest
