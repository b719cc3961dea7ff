// Package ingest decodes unlock events as they arrive: a device's MQTT payload,
// a vendor cloud's HTTP batch, a vendor's CSV export. It is pure (no storage, no
// network): every decoder returns domain events or one EINVALID
// *doorledger.Error whose message says where and what, as in
// "event 3: occurred_at: not an RFC 3339 time", and whose Fields list every
// problem found ("event 3" or "line 14" → message). Nothing is returned in part.
package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/doorledger/doorledger"
)

// Limits of what one message may carry.
const (
	MaxMQTTEvents   = 500     // events in one MQTT payload
	MaxMQTTPayload  = 1 << 20 // bytes of one MQTT payload
	DefaultMaxBatch = 1000    // events in one HTTP batch unless the caller says otherwise
)

// maxProblems bounds the problems listed in an error's Fields.
const maxProblems = 100

// problems collects what is wrong with a message, where, into one EINVALID.
type problems struct {
	fields map[string]string
	first  string
	n      int
}

func (p *problems) add(where, msg string) {
	p.n++
	if p.first == "" {
		p.first = where + ": " + msg
	}
	if len(p.fields) < maxProblems {
		if p.fields == nil {
			p.fields = map[string]string{}
		}
		if _, ok := p.fields[where]; !ok {
			p.fields[where] = msg
		}
	}
}

func (p *problems) err(what string) error {
	if p.n == 0 {
		return nil
	}
	msg := p.first
	if p.n > 1 {
		msg = fmt.Sprintf("%d problems in the %s; nothing was accepted. %s", p.n, what, p.first)
	}
	return &doorledger.Error{Code: doorledger.EINVALID, Message: msg, Fields: p.fields}
}

func invalid(format string, args ...any) error {
	return doorledger.Errorf(doorledger.EINVALID, format, args...)
}

// DecodeMQTTEvent decodes what device deviceID published on its events topic:
// one event object or an array of them (at most MaxMQTTEvents). The device is
// the one the broker authenticated, not what the payload says: a device_id in
// the payload must match it. Events come back with Source mqtt and no
// ReceivedAt (the sink stamps it).
//
// An event is {"event_id": "…", "occurred_at": "RFC 3339", "method": "…",
// "actor_ref": "…", "result": "granted"|"denied"}; event_id may also be an
// integer; unknown fields are ignored, repeated ones refused.
func DecodeMQTTEvent(deviceID int64, payload []byte) ([]doorledger.UnlockEvent, error) {
	if deviceID <= 0 {
		return nil, invalid("payload: no device")
	}
	if len(payload) > MaxMQTTPayload {
		return nil, invalid("payload: larger than %d bytes", MaxMQTTPayload)
	}
	raws, err := objects(payload, MaxMQTTEvents, false)
	if err != nil {
		return nil, err
	}
	var p problems
	events := make([]doorledger.UnlockEvent, len(raws))
	for i, raw := range raws {
		ev, err := decodeEvent(raw, false)
		where := "event " + strconv.Itoa(i)
		if err != nil {
			p.add(where, err.Error())
			continue
		}
		if ev.DeviceID != 0 && ev.DeviceID != deviceID {
			p.add(where, fmt.Sprintf("device_id: %d, but the message came from device %d", ev.DeviceID, deviceID))
			continue
		}
		ev.DeviceID, ev.Source = deviceID, doorledger.SourceMQTT
		if err := ev.Validate(); err != nil {
			p.add(where, doorledger.ErrorMessage(err))
			continue
		}
		events[i] = ev
	}
	if err := p.err("message"); err != nil {
		return nil, err
	}
	return events, nil
}

// DecodeHTTPBatch decodes a vendor cloud's batch: {"events": [ … ]} or a bare
// array, of at most max events (DefaultMaxBatch when max <= 0). Each event
// names its device by the portal's "device_id" or by "device", the vendor's
// reference (its serial); "building_id" is needed with "device" alone. The
// signature and replay window are the endpoint's to check, before this.
// Events come back with Source http and no ReceivedAt.
func DecodeHTTPBatch(body []byte, max int) ([]doorledger.UnlockEvent, error) {
	if max <= 0 {
		max = DefaultMaxBatch
	}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) > 0 && trimmed[0] == '{' {
		obj, err := object(trimmed)
		if err != nil {
			if _, ok := err.(*doorledger.Error); !ok {
				err = invalid("body: %s", err)
			}
			return nil, err
		}
		raw, ok := obj["events"]
		if !ok || isNull(raw) {
			return nil, invalid("events: missing")
		}
		trimmed = bytes.TrimSpace(raw)
		if len(trimmed) == 0 || trimmed[0] != '[' {
			return nil, invalid("events: must be an array")
		}
	} else if len(trimmed) == 0 || trimmed[0] != '[' {
		if err := syntaxCheck(trimmed); err != nil {
			return nil, err
		}
		return nil, invalid("body: must be an object with an events array, or an array")
	}
	raws, err := objects(trimmed, max, true)
	if err != nil {
		return nil, err
	}
	var p problems
	events := make([]doorledger.UnlockEvent, len(raws))
	for i, raw := range raws {
		ev, err := decodeEvent(raw, true)
		where := "event " + strconv.Itoa(i)
		if err != nil {
			p.add(where, err.Error())
			continue
		}
		ev.Source = doorledger.SourceHTTP
		if err := ev.Validate(); err != nil {
			p.add(where, doorledger.ErrorMessage(err))
			continue
		}
		events[i] = ev
	}
	if err := p.err("batch"); err != nil {
		return nil, err
	}
	return events, nil
}

// syntaxCheck returns a precise error for malformed JSON, or nil.
func syntaxCheck(b []byte) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return invalid("body: empty")
	}
	var v json.RawMessage
	if err := json.Unmarshal(b, &v); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return invalid("malformed JSON at byte %d: %s", se.Offset, se.Error())
		}
		return invalid("malformed JSON: %s", err.Error())
	}
	return nil
}

// objects splits an array (or, unless arrayOnly, a single object) into its
// elements, at most max, refusing an empty one.
func objects(b []byte, max int, arrayOnly bool) ([]json.RawMessage, error) {
	if err := syntaxCheck(b); err != nil {
		return nil, err
	}
	b = bytes.TrimSpace(b)
	switch b[0] {
	case '{':
		if arrayOnly {
			return nil, invalid("events: must be an array")
		}
		return []json.RawMessage{b}, nil
	case '[':
	default:
		return nil, invalid("payload: must be an event object or an array of them")
	}
	// Count before decoding the elements, so an oversized batch costs little.
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.Token() // '['
	var raws []json.RawMessage
	for dec.More() {
		if len(raws) == max {
			n := len(raws)
			for dec.More() {
				var skip json.RawMessage
				if dec.Decode(&skip) != nil {
					break
				}
				n++
			}
			return nil, invalid("batch: holds %d events; at most %d are allowed", n, max)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, invalid("malformed JSON: %s", err.Error())
		}
		raws = append(raws, raw)
	}
	if len(raws) == 0 {
		return nil, invalid("batch: holds no events")
	}
	return raws, nil
}

// object decodes a JSON object into its members, refusing a repeated key.
func object(b []byte) (map[string]json.RawMessage, error) {
	if err := syntaxCheck(b); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	tok, _ := dec.Token()
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("must be a JSON object")
	}
	m := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("malformed JSON: %s", err)
		}
		key, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("malformed JSON: %s", err)
		}
		if _, dup := m[key]; dup {
			return nil, fmt.Errorf("%s: given twice", fieldName(key))
		}
		m[key] = v
	}
	return m, nil
}

func fieldName(key string) string {
	if !utf8.ValidString(key) || len(key) > 40 {
		return strconv.Quote(truncate(key, 40))
	}
	return key
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

// decodeEvent reads one event object; the error names the field.
func decodeEvent(raw json.RawMessage, http bool) (doorledger.UnlockEvent, error) {
	var ev doorledger.UnlockEvent
	m, err := object(raw)
	if err != nil {
		if de, ok := err.(*doorledger.Error); ok {
			return ev, errors.New(de.Message)
		}
		if err.Error() == "must be a JSON object" {
			return ev, errors.New("must be an object")
		}
		return ev, err
	}
	if ev.EventID, err = eventID(m["event_id"]); err != nil {
		return ev, fmt.Errorf("event_id: %s", err)
	}
	if s, err := str(m["occurred_at"]); err != nil {
		return ev, fmt.Errorf("occurred_at: %s", err)
	} else if s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return ev, fmt.Errorf("occurred_at: %q is not an RFC 3339 time (such as 2026-03-08T14:03:00Z)", truncate(s, 40))
		}
		ev.OccurredAt = t
	}
	if ev.Method, err = str(m["method"]); err != nil {
		return ev, fmt.Errorf("method: %s", err)
	}
	if ev.ActorRef, err = str(m["actor_ref"]); err != nil {
		return ev, fmt.Errorf("actor_ref: %s", err)
	}
	var result string
	if result, err = str(m["result"]); err != nil {
		return ev, fmt.Errorf("result: %s", err)
	}
	ev.Result = doorledger.UnlockResult(result)
	if ev.DeviceID, err = positive(m["device_id"]); err != nil {
		return ev, fmt.Errorf("device_id: %s", err)
	}
	if http {
		if ev.DeviceRef, err = str(m["device"]); err != nil {
			return ev, fmt.Errorf("device: %s", err)
		}
		if ev.BuildingID, err = positive(m["building_id"]); err != nil {
			return ev, fmt.Errorf("building_id: %s", err)
		}
	}
	return ev, nil
}

// str reads an optional string member ("" when absent or null).
func str(raw json.RawMessage) (string, error) {
	if raw == nil || isNull(raw) {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", errors.New("must be a string")
	}
	return s, nil
}

// eventID reads a string or an integer (a device's counter) as text.
func eventID(raw json.RawMessage) (string, error) {
	t := bytes.TrimSpace(raw)
	if len(t) > 0 && (t[0] == '-' || t[0] >= '0' && t[0] <= '9') {
		if _, err := strconv.ParseInt(string(t), 10, 64); err != nil {
			return "", errors.New("must be a string or an integer")
		}
		return string(t), nil
	}
	s, err := str(raw)
	if err != nil {
		return "", errors.New("must be a string or an integer")
	}
	return s, nil
}

// positive reads an optional positive integer member (0 when absent or null).
func positive(raw json.RawMessage) (int64, error) {
	if raw == nil || isNull(raw) {
		return 0, nil
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(raw)), 10, 64)
	if err != nil || n <= 0 {
		return 0, errors.New("must be a positive integer")
	}
	return n, nil
}
