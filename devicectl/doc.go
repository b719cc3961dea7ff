// Package devicectl ("device control") carries desired state to Doorledger's
// delivery-access devices and brings their reported state and unlock events
// back. It implements doorledger.Transport three ways and calls
// doorledger.DeviceReports and doorledger.EventSink for what devices send:
//
//   - Broker: an embedded MQTT broker (mochi-mqtt) inside the portal process.
//     Devices connect over TCP (or TLS) with their own credential; an ACL
//     confines each to its own topics; the portal publishes in-process.
//   - Client: the portal's connection to an external MQTT 5 broker
//     (Mosquitto, EMQX, HiveMQ) with a persistent session and manual
//     acknowledgement. WriteMosquittoConfig writes a Mosquitto configuration,
//     password file and ACL from the device list.
//   - Webhook: vendor-cloud devices, reached by a signed HTTPS POST;
//     VerifySignature checks vendors' signed callbacks the same way.
//
// SimDevice (and the command cmd/devicesim) speaks the device side.
//
// # Wire format
//
// Topics, where {id} is the device id in decimal:
//
//	doorledger/devices/{id}/desired   portal → device  QoS 1, retained
//	doorledger/devices/{id}/reported  device → portal  QoS 1
//	doorledger/devices/{id}/events    device → portal  QoS 1
//
// A device connects with MQTT username {id}, password its secret, and (on the
// embedded broker) client id "device-{id}". It may subscribe only to its
// desired topic and publish only to its reported and events topics.
//
// desired (doorledger.DesiredState):
//
//	{"device_id": 7, "command_id": 42, "state": "disabled", "version": 12,
//	 "issued_at": "2026-11-22T09:30:00Z"}
//
// The device applies a version greater than the last it applied, ignores any
// other (a replay of the retained message, or an older one), and then
// publishes reported (doorledger.ReportedState), also once on every connect:
//
//	{"device_id": 7, "state": "disabled", "version": 12, "at": "2026-11-22T09:30:01Z"}
//
// events is one object, or an array of at most MaxEventsPerMessage:
//
//	{"event_id": "8b0f…", "occurred_at": "2026-11-22T09:31:00Z",
//	 "method": "courier_app", "actor_ref": "pkg-123", "result": "granted"}
//
// event_id is chosen by the device, unique per device and unchanged when the
// event is sent again. A message counts as received only when its PUBACK
// arrives, which the portal sends only after it committed the message; the
// device publishes again until then, and the portal ignores repeats. See
// PROTOCOL.md for the details, the failure cases and the webhook signature.
package devicectl
