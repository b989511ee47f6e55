// Package vcsim is a simulated vCenter as a [producers.Source], for demos
// and tests (`type: simulator` in the configuration): it needs no vCenter,
// yet its events take the same path as a real one's.
//
// # Contract
//
// [Source.Run] starts govmomi's simulator (the VPX model: a datacenter, a
// cluster of three hosts, a standalone host, four virtual machines) in this
// process, serving the vSphere SOAP API over HTTPS on a free port of
// 127.0.0.1 with a self-signed certificate and a random password. A workload drives it at Config.Rate events
// per second: it powers virtual machines off and on (VmStoppingEvent,
// VmPoweredOffEvent, VmStartingEvent, VmPoweredOnEvent), reconfigures them
// (VmReconfiguredEvent) and posts an EventEx
// (com.vmware.vc.HA.HostStateChangedEvent) and a GeneralUserEvent through
// the EventManager. The events are read by a [vcenter.Source] over the
// real SOAP path — login with the password from a file, certificate
// verified against the simulator's CA — and published with its identities:
// subjects `vmware.vcenter.<name>.<EventType>`, Nats-Msg-Id
// `<instance uuid>:<key>`. So a route written against the simulator works
// against a real vCenter.
//
// While Run runs, [Source.Address], [Source.Credentials] and
// [Source.CAFile] let another client (govc, a test) drive the simulator
// too. When ctx is done Run stops the workload and the vCenter source (which
// saves its checkpoint), shuts the simulator down and returns ctx.Err().
// It returns earlier only with the vCenter source's error (a corrupt
// checkpoint) or when the simulator cannot start; a [producers.Runner]
// runs it again with a backoff.
// A restart is the same vCenter again: Run reads the source's checkpoint
// (and its last event in the stream) and takes over the last run's
// instance uuid and port (a new port only when that one is taken), and its
// event keys go on after the last run's. So the source resumes after its
// checkpoint, with no warning, the way it does on a real vCenter, and the
// router format's CloudEvent source stays the same. A first run, or one
// without a checkpointer, gets a new random instance uuid and a free port.
// Config.Format selects the CloudEvent shape as for a vCenter source.
//
// # Example
//
//	pub := producers.NewPublisher(js, producers.Scope{Provider: vcenter.Provider, Source: "demo"})
//	src, err := vcsim.New(vcsim.Config{Rate: 5}, vcsim.WithName("demo"),
//		vcsim.WithCheckpointer(cp), vcsim.WithLastStored(pub), vcsim.WithLogger(log))
//	if err != nil {
//		return err
//	}
//	return src.Run(ctx, pub)
//
// Then `nats sub 'vmware.vcenter.demo.>'` shows the events. A program that
// holds the Source can also tail the simulator directly:
//
//	user, pw := src.Credentials()
//	// GOVC_URL=src.Address() GOVC_USERNAME=user GOVC_PASSWORD=pw GOVC_TLS_CA_CERTS=src.CAFile() govc events -f
package vcsim
