// Package vcenter is the [producers.Source] of one VMware vCenter: it reads
// the vCenter event history and publishes every event as a CloudEvent, in
// order, on `vmware.vcenter.<source>.<EventType>`.
//
// # Contract
//
// The source logs in over the vSphere SOAP API (TLS verified unless
// skipTLSVerify; caFile replaces the system roots), creates an
// EventHistoryCollector that begins at the resume time, and drains it with
// ReadNextEvents in pages of pageSize (at most 1000) for as long as full
// pages come back. Each page is one [producers.Publisher.Publish] call;
// only when Publish returned nil — JetStream acknowledged every event — does
// the position advance, and the checkpoint (saved every checkpoint.period
// and on shutdown) only ever holds such a position. When caught up, the
// source waits on the PropertyCollector (WaitForUpdatesEx) for the
// collector's latestPage to change, so a new event is read as soon as
// vCenter reports it; the wait ends after pollInterval anyway. While
// events flow it does not wait: after a read that returned events it
// reads again 20 ms later, until a read returns none; from the third such
// read in a row no PropertyCollector watches (see conn.unwatch).
//
// Identity. The CloudEvent id is the event key (tanzu format) or a UUID
// derived from the vCenter and the key (router format); the Nats-Msg-Id is
// `<vCenter instance uuid>:<key>`, so events replayed after a crash or a
// reconnect fall inside JetStream's duplicate window and are stored once.
// Each event goes to the publisher as a [producers.Record] carrying that
// Nats-Msg-Id and the vSphere event type as its subject token;
// [Source.Scope] gives the rest of the subject.
//
// Position. The checkpoint is JSON under `vcenter.<name>` in the
// vrelay_checkpoints bucket, with the field names of Tanzu Sources
// (vCenter, lastEventKey, lastEventType, lastEventKeyTimestamp,
// createdTimestamp) plus instanceUuid. The stream itself is the truth,
// the checkpoint its summary: with [WithLastStored] (vrelay passes the
// source's publisher), the last event of this vCenter instance in the
// stream wins over the checkpoint; without it the checkpoint alone counts.
// After a crash the stream is ahead of the checkpoint, saved every
// checkpoint.period; after a power loss on one node it may be behind. On
// start, with P that position:
//
//   - no position: begin at vCenter's current time;
//   - a position: begin at its event's time, but no earlier than
//     checkpoint.maxAge before vCenter's current time (a warning names the
//     span skipped); maxAge 0s begins at the current time. Events at or
//     before the checkpointed key are skipped. Keys are int32 and wrap on
//     old vCenters, so they are compared with serial-number arithmetic;
//   - a position of another vCenter instance (replaced, restored, a
//     restarted simulator): warn and begin at the current time;
//   - a checkpoint that cannot be decoded: Run returns
//     [ErrCorruptCheckpoint], naming the key and the recovery,
//     `vrelay checkpoint delete vcenter.<name>`.
//
// Failures. A lost session, a network error, rejected credentials or an
// untrusted certificate is logged once per attempt, with what to fix, and
// retried with a backoff from 1s doubling to 60s; the source then resumes
// after the last stored event. A failed Publish is retried the same way,
// while a keep-alive holds the vCenter session. If another writer changes
// the checkpoint (two replicas polling one vCenter), the conflict is logged
// as an error and the source keeps its own position. Run returns only when
// ctx is done (ctx.Err()) or for a corrupt checkpoint; vrelay's
// [producers.Runner] then logs it, shows it on /readyz and runs the source
// again with a backoff, while the other sources and the routes go on.
//
// Completeness: a stall watchdog compares vCenter's own latest event with
// what the collector returned, at once when a read misses an event the
// collector's latest page reported and every stallCheckInterval anyway;
// missed ranges, and key jumps of more than a page, are swept by time and
// published (de-duplicated by Nats-Msg-Id). An event of a class govmomi does
// not know is published as an [UnknownEvent], never skipped. With
// [WithHealthEvents], connection lost/restored, stalls, swept gaps and
// checkpoint conflicts are published on `vrelay.health.vcenter.<name>`;
// [Source.Health] reports an unreachable vCenter or a stall for /readyz.
//
// Metrics (with [WithRegisterer]), labelled by source:
// vrelay_vcenter_events_total, vrelay_vcenter_events_skipped_total,
// vrelay_vcenter_convert_errors_total, vrelay_vcenter_connected,
// vrelay_vcenter_connection_failures_total,
// vrelay_vcenter_last_event_timestamp_seconds,
// vrelay_vcenter_checkpoint_saves_total{result}, vrelay_vcenter_lag_seconds,
// vrelay_vcenter_gaps_total, vrelay_vcenter_stalls_total,
// vrelay_vcenter_sweeps_total, vrelay_vcenter_swept_events_total,
// vrelay_vcenter_unknown_class_events_total,
// vrelay_vcenter_undecodable_events_total, and with enrich
// vrelay_vcenter_enrich_misses_total{entity}.
//
// Enrichment. With [Config.Enrich], each event also carries the
// inventory paths (vmpath, vmfolder, hostpath, ...) and vSphere tags
// (vmtags, ...) of the objects it names, from a cache in package
// inventory that each session rebuilds and a PropertyCollector keeps
// current; a lookup never calls vCenter, and a miss adds nothing.
//
// # Example
//
//	src, err := vcenter.New(vcenter.Config{
//		Address:  "https://vc01.example.com/sdk",
//		Username: "vrelay@vsphere.local",
//		Password: secret.Ref{FromFile: "/var/run/secrets/vc01/password"},
//		CAFile:   "/etc/vrelay/vc01-ca.pem",
//	}, vcenter.WithName("vc01"), vcenter.WithCheckpointer(cp),
//		vcenter.WithLastStored(pub), vcenter.WithLogger(log))
//	if err != nil {
//		return err
//	}
//	return src.Run(ctx, pub) // ctx.Err() on shutdown
//
// where pub := producers.NewPublisher(js, producers.Scope{Provider:
// vcenter.Provider, Source: "vc01"}), the same as src.Scope().
//
// The same in YAML, with the defaults spelled out:
//
//	address: https://vc01.example.com/sdk   # or just vc01.example.com
//	username: vrelay@vsphere.local
//	password:
//	  fromFile: /var/run/secrets/vc01/password   # or fromEnv: VC01_PASSWORD
//	skipTLSVerify: false
//	caFile: /etc/vrelay/vc01-ca.pem
//	checkpoint:
//	  maxAge: 5m      # 0s: no replay after a restart
//	  period: 10s
//	format: tanzu     # or router
//	payloadEncoding: application/json   # or application/xml
//	pollInterval: 1s
//	pageSize: 1000
//	stallCheckInterval: 30s
package vcenter
