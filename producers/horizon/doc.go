// Package horizon is the [producers.Source] of one VMware Horizon pod: it
// reads the pod's audit events (logins, logouts, desktop pool changes,
// ...) from the Horizon Server REST API and publishes each as a
// CloudEvent, in (time, id) order, on `vmware.horizon.<source>.<TYPE>`,
// such as vmware.horizon.hz01.VLSI_USERLOGGEDIN_REST.
//
// # Contract
//
// Authentication: POST /rest/login with domain, user name and password
// gives an access token (30 minutes by default) and a refresh token (8
// hours). The source keeps both: it refreshes the access token (POST
// /rest/refresh) when a request gets 401 or the token is about to expire,
// logs in again when the refresh is refused (400: the refresh token
// expired), and logs out (POST /rest/logout) when it stops. TLS is verified
// (caFile replaces the system roots; skipTLSVerify for labs). The password
// and the tokens are never logged.
//
// Reading: GET /rest/external/v1/audit-events with the filter
// {"type":"Between","name":"time","fromValue":<position>,"toValue":<now>},
// page and size=pageSize, following pages while HAS_MORE_RECORDS is TRUE.
// Horizon answers newest first; the source keeps each event once by id (a
// page can repeat events when new ones arrive during the read), orders the
// read by (time, id) and publishes it in batches of pageSize. toValue is
// Horizon's current time as the Date headers of its answers show it, so an
// event stamped in the future by a Connection Server with a fast clock is
// read once its time has come rather than moving the position past the
// events of the other servers. Once caught up, the source reads again every
// pollInterval. A read that would hold more than 100,000 events (after a
// long stop with a large maxAge) is narrowed to an earlier span of time.
//
// Failures: 409 (the API's description uses it for a missing event
// database),
// 5xx, network errors and rejected credentials are logged once per attempt,
// with what to fix, and retried with a backoff from 1s doubling to 60s; a
// 429 (Horizon 2406 and later throttle the API) waits the
// X-Rate-Limit-Retry-After-Seconds it names. A failed Publish is retried
// the same way. Run returns only when ctx is done (ctx.Err()) or for a
// corrupt checkpoint ([ErrCorruptCheckpoint]).
//
// Identity. The CloudEvent id is the Horizon event id; the Nats-Msg-Id is
// `<host>:<event id>`, host being the address's host[:port], so events
// published again after a crash fall inside JetStream's duplicate window
// and are stored once.
//
// Position. Several events can share a millisecond, and the Between
// filter includes both ends, so the position is the last stored event's
// millisecond plus every id stored at it: a read begins at that
// millisecond again and publishes only the ids it has not stored. The
// position is saved as JSON under `horizon.<name>` in the
// vrelay_checkpoints bucket after each batch's PubAcks (fields horizon,
// host, lastEventTime in epoch ms, lastEventTimestamp, lastEventIds,
// lastEventType, createdTimestamp). With [WithLastStored] the last event
// of this source in the stream wins over the checkpoint on start, as for
// vCenter; the replay is bounded by maxAge (0s: start at Horizon's current
// time) with a warning naming the span skipped.
//
// Late events. An event that Horizon's event database receives after a
// newer one was read, with a time before that newer one's millisecond, is
// not read: the time filter has moved past it. Horizon's REST API offers
// no other cursor (ids can be filtered only for equality).
//
// Metrics (with [WithRegisterer]), labelled by source:
// vrelay_horizon_events_total, vrelay_horizon_events_skipped_total,
// vrelay_horizon_convert_errors_total, vrelay_horizon_connected,
// vrelay_horizon_errors_total{kind}, vrelay_horizon_logins_total,
// vrelay_horizon_token_refreshes_total,
// vrelay_horizon_last_event_timestamp_seconds and
// vrelay_horizon_checkpoint_saves_total{result}.
//
// # Example
//
//	src, err := horizon.New(horizon.Config{
//		Address:  "https://horizon.example.com",
//		Domain:   "corp",
//		Username: "svc-vrelay",
//		Password: secret.Ref{FromFile: "/var/run/secrets/horizon/password"},
//		CAFile:   "/etc/vrelay/horizon-ca.pem",
//	}, horizon.WithName("hz01"), horizon.WithCheckpointer(cp),
//		horizon.WithLastStored(pub), horizon.WithLogger(log))
//	if err != nil {
//		return err
//	}
//	return src.Run(ctx, pub) // ctx.Err() on shutdown
//
// where pub := producers.NewPublisher(js, src.Scope()).
//
// The same in YAML, with the defaults spelled out:
//
//	address: https://horizon.example.com
//	domain: corp
//	username: svc-vrelay
//	password:
//	  fromFile: /var/run/secrets/horizon/password   # or fromEnv: HORIZON_PASSWORD
//	skipTLSVerify: false
//	caFile: /etc/vrelay/horizon-ca.pem
//	pollInterval: 1s
//	pageSize: 1000
//	maxAge: 5m      # 0s: no replay after a restart
//	format: tanzu   # or router
package horizon
