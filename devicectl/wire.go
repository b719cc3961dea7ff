package devicectl

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/doorledger/doorledger"
)

// TopicPrefix starts every Doorledger topic.
const TopicPrefix = "doorledger/devices/"

// Topic kinds: the last level of a device topic.
const (
	KindDesired  = "desired"  // portal → device, retained
	KindReported = "reported" // device → portal
	KindEvents   = "events"   // device → portal
)

// Limits on what a device may send in one message.
const (
	MaxEventsPerMessage = 500
	maxEventIDLen       = 128
	maxMethodLen        = 64
	maxActorRefLen      = 256
)

// DesiredTopic returns the topic the portal publishes device id's desired state on.
func DesiredTopic(id int64) string { return deviceTopic(id, KindDesired) }

// ReportedTopic returns the topic device id publishes its reported state on.
func ReportedTopic(id int64) string { return deviceTopic(id, KindReported) }

// EventsTopic returns the topic device id publishes its unlock events on.
func EventsTopic(id int64) string { return deviceTopic(id, KindEvents) }

func deviceTopic(id int64, kind string) string {
	return TopicPrefix + strconv.FormatInt(id, 10) + "/" + kind
}

// ParseTopic splits a device topic into the device id and kind. ok is false for
// anything that is not exactly doorledger/devices/{id}/{kind} with a canonical
// decimal id > 0 and a known kind.
func ParseTopic(topic string) (id int64, kind string, ok bool) {
	rest, found := strings.CutPrefix(topic, TopicPrefix)
	if !found {
		return 0, "", false
	}
	idPart, kind, found := strings.Cut(rest, "/")
	if !found {
		return 0, "", false
	}
	switch kind {
	case KindDesired, KindReported, KindEvents:
	default:
		return 0, "", false
	}
	if id, ok = parseDeviceID(idPart); !ok {
		return 0, "", false
	}
	return id, kind, true
}

// parseDeviceID parses a canonical decimal device id (no sign, no leading zero).
func parseDeviceID(s string) (int64, bool) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 || strconv.FormatInt(id, 10) != s {
		return 0, false
	}
	return id, true
}

// ClientID is the MQTT client identifier device id must connect with.
func ClientID(id int64) string { return "device-" + strconv.FormatInt(id, 10) }

// EventMessage is one unlock event as a device sends it on its events topic
// (or a vendor posts it to the ingest endpoint).
type EventMessage struct {
	EventID    string                  `json:"event_id"`
	OccurredAt time.Time               `json:"occurred_at"` // RFC 3339, device clock
	Method     string                  `json:"method"`
	ActorRef   string                  `json:"actor_ref,omitempty"`
	Result     doorledger.UnlockResult `json:"result"`
}

// MarshalDesired encodes d as the payload of a desired-state message. It
// returns EINVALID when d is not something a device could apply.
func MarshalDesired(d doorledger.DesiredState) ([]byte, error) {
	switch {
	case d.DeviceID <= 0:
		return nil, doorledger.Errorf(doorledger.EINVALID, "Desired state has no device id.")
	case !d.State.Valid():
		return nil, doorledger.Errorf(doorledger.EINVALID, "Desired state %q is neither enabled nor disabled.", d.State)
	case d.Version <= 0:
		return nil, doorledger.Errorf(doorledger.EINVALID, "Desired state version must be positive, not %d.", d.Version)
	}
	b, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("encode desired state: %w", err)
	}
	return b, nil
}

// ParseReport decodes a reported-state payload from device id. The device id
// comes from the authenticated connection (or the topic the broker's ACL
// confined the device to); a device_id in the payload must match it or be
// absent. Errors are EINVALID.
func ParseReport(id int64, payload []byte) (doorledger.ReportedState, error) {
	var r doorledger.ReportedState
	if err := json.Unmarshal(payload, &r); err != nil {
		return r, doorledger.Errorf(doorledger.EINVALID, "Reported state is not valid JSON: %v.", err)
	}
	switch {
	case r.DeviceID != 0 && r.DeviceID != id:
		return r, doorledger.Errorf(doorledger.EINVALID, "Reported state names device %d on device %d's topic.", r.DeviceID, id)
	case !r.State.Valid():
		return r, doorledger.Errorf(doorledger.EINVALID, "Reported state %q is neither enabled nor disabled.", r.State)
	case r.Version < 0:
		return r, doorledger.Errorf(doorledger.EINVALID, "Reported version %d is negative.", r.Version)
	}
	r.DeviceID = id
	return r, nil
}

// ParseEvents decodes an events payload from device id: one JSON object or an
// array of them (at most MaxEventsPerMessage). receivedAt is the portal's clock
// (zero: the store stamps the events when it commits them).
// Errors are EINVALID and name the offending event.
func ParseEvents(id int64, payload []byte, receivedAt time.Time) ([]doorledger.UnlockEvent, error) {
	payload = bytes.TrimSpace(payload)
	var one [1]EventMessage
	msgs, ok := scanEvents(payload, one[:0])
	if !ok {
		var err error
		if msgs, err = decodeEventsJSON(payload); err != nil {
			return nil, err
		}
	}
	switch {
	case len(msgs) == 0:
		return nil, doorledger.Errorf(doorledger.EINVALID, "Events message holds no event.")
	case len(msgs) > MaxEventsPerMessage:
		return nil, doorledger.Errorf(doorledger.EINVALID, "Events message holds %d events; at most %d are allowed.", len(msgs), MaxEventsPerMessage)
	}
	events := make([]doorledger.UnlockEvent, len(msgs))
	for i, m := range msgs {
		if err := m.validate(); err != nil {
			return nil, doorledger.Errorf(doorledger.EINVALID, "Event %d: %s", i, doorledger.ErrorMessage(err))
		}
		events[i] = doorledger.UnlockEvent{
			DeviceID:   id,
			EventID:    m.EventID,
			OccurredAt: m.OccurredAt,
			ReceivedAt: receivedAt,
			Method:     m.Method,
			ActorRef:   m.ActorRef,
			Result:     m.Result,
		}
	}
	return events, nil
}

// decodeEventsJSON decodes an events payload with encoding/json: one object
// or an array of them.
func decodeEventsJSON(payload []byte) ([]EventMessage, error) {
	if len(payload) > 0 && payload[0] == '[' {
		var msgs []EventMessage
		if err := json.Unmarshal(payload, &msgs); err != nil {
			return nil, doorledger.Errorf(doorledger.EINVALID, "Events are not valid JSON: %v.", err)
		}
		return msgs, nil
	}
	var m EventMessage
	if err := json.Unmarshal(payload, &m); err != nil {
		return nil, doorledger.Errorf(doorledger.EINVALID, "Event is not valid JSON: %v.", err)
	}
	return []EventMessage{m}, nil
}

// scanEvents decodes p, as json.Unmarshal would, when p is what devices
// usually send: one event object, or an array of 1 to MaxEventsPerMessage of
// them (a device's backlog), each holding only EventMessage's fields, named
// in ASCII (in any case, a repeat overriding), each a string without escapes;
// JSON whitespace around the tokens and nothing after them. It appends the
// events to msgs. It reports false for anything else, for encoding/json to
// decode (and accept or refuse), so the two never disagree; FuzzParseEvents
// compares them. It exists because encoding/json's reflection was 18-26% of
// the portal's CPU in the 10-minute portfolio runs (docs/benchmarks.md, "Why
// the targets are missed"; "Per-message cost (session 7)" has the cut).
func scanEvents(p []byte, msgs []EventMessage) ([]EventMessage, bool) {
	s := string(p) // one allocation; the events' strings share it
	i := skipSpace(p, 0)
	if i == len(p) || p[i] != '[' {
		var m EventMessage
		i, ok := scanEvent(p, s, i, &m)
		return append(msgs, m), ok && i == len(p)
	}
	for i = skipSpace(p, i+1); len(msgs) < MaxEventsPerMessage; i = skipSpace(p, i+1) {
		var m EventMessage
		var ok bool
		if i, ok = scanEvent(p, s, i, &m); !ok {
			return nil, false
		}
		msgs = append(msgs, m)
		switch {
		case i == len(p):
			return nil, false
		case p[i] == ']':
			return msgs, skipSpace(p, i+1) == len(p)
		case p[i] != ',':
			return nil, false
		}
	}
	return nil, false
}

// scanEvent decodes the event object at p[i:] into m (s is p as a string)
// and returns the index of the first byte after it and any whitespace; ok
// is false when the object is not one scanEvents takes.
func scanEvent(p []byte, s string, i int, m *EventMessage) (next int, ok bool) {
	if i == len(p) || p[i] != '{' {
		return 0, false
	}
	i = skipSpace(p, i+1)
	if i < len(p) && p[i] == '}' {
		return skipSpace(p, i+1), true
	}
	for {
		k0, k1, ok := scanString(p, i, false)
		if !ok {
			return 0, false
		}
		i = skipSpace(p, k1+1)
		if i == len(p) || p[i] != ':' {
			return 0, false
		}
		i = skipSpace(p, i+1)
		v0, v1, ok := scanString(p, i, true)
		if !ok {
			return 0, false
		}
		switch key := p[k0:k1]; {
		case asciiFold(key, "event_id"):
			m.EventID = s[v0:v1]
		case asciiFold(key, "method"):
			m.Method = s[v0:v1]
		case asciiFold(key, "actor_ref"):
			m.ActorRef = s[v0:v1]
		case asciiFold(key, "result"):
			m.Result = doorledger.UnlockResult(s[v0:v1])
		case asciiFold(key, "occurred_at"):
			// What encoding/json does: the literal, quotes and all.
			if m.OccurredAt.UnmarshalJSON(p[i:v1+1]) != nil {
				return 0, false
			}
		default:
			return 0, false
		}
		i = skipSpace(p, v1+1)
		if i == len(p) {
			return 0, false
		}
		if p[i] == '}' {
			return skipSpace(p, i+1), true
		}
		if p[i] != ',' {
			return 0, false
		}
		i = skipSpace(p, i+1)
	}
}

// skipSpace returns the index of the first byte of p from i on that is not
// JSON whitespace.
func skipSpace(p []byte, i int) int {
	for i < len(p) && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r') {
		i++
	}
	return i
}

// scanString finds the JSON string starting at p[i] and returns where its
// contents start and end (the closing quote). ok is false unless it is a
// string scanEvent decodes as encoding/json does: closed, no escape, no
// control character, and ASCII (a key) or valid UTF-8 (a value; encoding/json
// would replace invalid bytes).
func scanString(p []byte, i int, value bool) (start, end int, ok bool) {
	if i == len(p) || p[i] != '"' {
		return 0, 0, false
	}
	start = i + 1
	ascii := true
	for j := start; j < len(p); j++ {
		switch c := p[j]; {
		case c == '"':
			if !ascii && (!value || !utf8.Valid(p[start:j])) {
				return 0, 0, false
			}
			return start, j, true
		case c == '\\' || c < ' ':
			return 0, 0, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return 0, 0, false
}

// asciiFold reports whether key equals name (lower-case ASCII) but for the
// case of ASCII letters: encoding/json's match of an ASCII key to a field.
func asciiFold(key []byte, name string) bool {
	if len(key) != len(name) {
		return false
	}
	for i, c := range key {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != name[i] {
			return false
		}
	}
	return true
}

func (m *EventMessage) validate() error {
	switch {
	case m.EventID == "":
		return doorledger.Errorf(doorledger.EINVALID, "event_id is missing.")
	case len(m.EventID) > maxEventIDLen || !utf8.ValidString(m.EventID):
		return doorledger.Errorf(doorledger.EINVALID, "event_id is longer than %d bytes or not UTF-8.", maxEventIDLen)
	case m.OccurredAt.IsZero():
		return doorledger.Errorf(doorledger.EINVALID, "occurred_at is missing.")
	case m.Method == "":
		return doorledger.Errorf(doorledger.EINVALID, "method is missing.")
	case len(m.Method) > maxMethodLen || !utf8.ValidString(m.Method):
		return doorledger.Errorf(doorledger.EINVALID, "method is longer than %d bytes or not UTF-8.", maxMethodLen)
	case len(m.ActorRef) > maxActorRefLen || !utf8.ValidString(m.ActorRef):
		return doorledger.Errorf(doorledger.EINVALID, "actor_ref is longer than %d bytes or not UTF-8.", maxActorRefLen)
	case m.Result != doorledger.UnlockGranted && m.Result != doorledger.UnlockDenied:
		return doorledger.Errorf(doorledger.EINVALID, "result %q is neither granted nor denied.", m.Result)
	}
	return nil
}
