// Package eventline renders a CloudEvent as one readable line, for people
// watching events go by (`vrelay tail`, the log sink's line format):
//
//	2020-02-11T21:29:54Z VmPoweredOffEvent vc01 vm=test-01 host=10.185.22.74 user=VSPHERE.LOCAL\Administrator test-01 on 10.0.0.1 in testDC is powered off
//
// The columns are the event time (UTC, to the second), a short type, the
// vrelay source (from the subject `<root>.<provider>.<source>.<type>`, or
// the CloudEvent source's host when no subject is known), what the event
// concerns (vCenter: `data.Vm.Name`, `data.Host.Name`, `data.UserName`;
// Horizon: `data.user_id`, `data.machine_dns_name`) and its message
// (vCenter: `data.FullFormattedMessage`; Horizon and most others:
// `data.message`).
//
// Contract: [Style.Append] never fails and never writes a newline or a
// control character taken from the event (they are escaped, so a webhook
// sender cannot drive the terminal); only [Style.Color] adds ANSI escape
// sequences. Data that is not a JSON object just leaves the columns that
// need it out. It is safe for concurrent use.
//
//	line := eventline.Style{Color: true}.Append(nil, &ev, msg.Subject)
package eventline
