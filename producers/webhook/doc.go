// Package webhook is the [producers.Source] that receives CloudEvents over
// HTTP: senders POST events to one listener, and each event is stored in
// JetStream before the sender hears "200".
//
// The listener speaks the CloudEvents HTTP protocol binding in its three
// content modes: binary (ce-* headers, the body is the data), structured
// (Content-Type application/cloudevents+json) and batched
// (application/cloudevents-batch+json, a JSON array of structured events).
// It also answers the abuse-protection handshake of the CloudEvents webhook
// spec (OPTIONS with WebHook-Request-Origin).
//
// # Contract
//
// A request is all or nothing. Every event in it is decoded and validated
// (specversion, id, source, type) before any is published; then all of them
// go to one [producers.Publisher.Publish] call, and the answer is 200 only
// after Publish returned nil, that is once JetStream stored every event.
// When anything is wrong nothing is published. A 503 means that any subset
// may have been stored; the sender should retry the same request, which is
// safe because the publisher sets Nats-Msg-Id from each event's source and
// id, so JetStream drops the copies.
//
// Events are handed on as received, with two exceptions that keep the
// stored event CloudEvents 1.0 with its data byte-exact. A CloudEvents 0.3
// event is accepted and upgraded to 1.0 (schemaurl becomes dataschema; data
// sent with datacontentencoding "base64" is stored decoded, as 1.0
// data_base64 is). In a structured-mode body, JSON data is a value inside
// the envelope, so the white space around it is the envelope's: the data is
// the value's text exactly, white space inside it included. A binary-mode
// body is the data, byte for byte. Every context attribute must be valid
// UTF-8 (binary-mode headers can carry any byte); JSON data must be valid
// JSON.
//
// Answers (bodies are JSON: {"accepted":N} on success, {"error":"..."} with
// "index" for the bad event of a batch otherwise):
//
//	200  all events stored
//	200  OPTIONS handshake: WebHook-Allowed-Origin, WebHook-Allowed-Rate: *, Allow: POST
//	204  OPTIONS without WebHook-Request-Origin; Allow: POST, OPTIONS
//	400  not a CloudEvent, a specversion other than 1.0 or 0.3, invalid JSON,
//	     a missing or invalid attribute, an attribute that is not UTF-8, JSON
//	     data that is not JSON, invalid base64 data, ce-datacontentencoding
//	     in binary mode, an empty batch, a batch over maxBatchEvents
//	401  missing or wrong credentials; WWW-Authenticate names the schemes
//	404  any path but Config.Path
//	405  any method but POST and OPTIONS; Allow: POST, OPTIONS
//	413  body over maxBodyBytes
//	415  a structured format other than JSON, such as application/cloudevents+xml
//	503  Publish failed or timed out; Retry-After: 1
//
// Rejected requests are logged at debug level with their reason. Bodies and
// credentials are never logged. The counter
// vrelay_webhook_requests_total{source,code} counts answers by status.
//
// # Example
//
//	src, err := webhook.New(webhook.Config{
//		Listen: ":8080",
//		Path:   "/events",
//		Auth:   webhook.AuthConfig{Bearer: webhook.BearerAuth{Token: secret.Ref{FromEnv: "WEBHOOK_TOKEN"}}},
//	}, webhook.WithName("hooks"), webhook.WithLogger(log))
//	if err != nil {
//		return err
//	}
//	return src.Run(ctx, pub) // returns ctx.Err() after a graceful shutdown
//
// A sender in binary mode:
//
//	curl -i http://localhost:8080/events \
//	  -H "Authorization: Bearer $WEBHOOK_TOKEN" \
//	  -H "ce-specversion: 1.0" -H "ce-id: 42" -H "ce-source: /my/app" \
//	  -H "ce-type: com.example.thing.created" \
//	  -H "Content-Type: application/json" -d '{"name":"thing"}'
//
//	HTTP/1.1 200 OK
//	{"accepted":1}
package webhook
