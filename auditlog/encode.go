// Package auditlog is the verifiable log's technology, without storage: the
// canonical encoding of log entries, the Merkle tree arithmetic and proofs
// (golang.org/x/mod/sumdb/tlog, Certificate Transparency's RFC 6962 hashing),
// the portal's Ed25519 signing key and signed heads
// (golang.org/x/mod/sumdb/note), and the checker that recomputes a log and
// names its first mismatch. The db package stores the log and feeds the
// checker; this package holds no SQL.
//
// # Encoding, version 1
//
// A leaf is the SHA-256 tree hash (RFC 6962: SHA-256(0x00 || data)) of one
// row's canonical encoding. The encoding is text, one field per line, each
// value prefixed by its length in bytes so that any byte (a newline included)
// can appear in it:
//
//	encoding = "doorledger-log/1\n" field("kind", kind) fields...
//	field    = name " " length " " value "\n"
//
// name is the field's name; length is the value's length in bytes in decimal
// without leading zeros ("0" for empty); value is that many bytes, verbatim.
// Each kind has a fixed list of fields in a fixed order (below); there is
// nothing after the last field. Values are written in one way only:
//
//   - integers in decimal, "-" for negatives, no leading zeros or "+" ("0", "-5");
//   - times in UTC with microseconds, as 2006-01-02T15:04:05.000000Z, and the
//     empty string for no time (a time with finer precision cannot be encoded);
//   - hashes as 64 lower-case hex digits;
//   - text verbatim, whatever its bytes;
//   - anomalies as the kinds, in the row's order, joined by ","; each a word of
//     [a-z0-9_];
//   - id ranges as "a-b" (a < b) or "a", ascending, joined by ",", each range
//     starting at least two after the previous one ended (so "1-3,5", never
//     "1-2,3" or "3,1"); ids are positive.
//
// Fields of each kind:
//
//	audit:  id at actor_id actor action building_id object_type object_id ip detail
//	unlock: id building_id device_id device_ref event_id occurred_at received_at
//	        method actor_ref result anomalies source        (device_id 0: unknown device)
//	purge:  id at actor of building_id before ids leaves_hash
//
// Decode accepts exactly what Encode writes: decode(encode(x)) == x, and a
// byte string that decodes re-encodes to itself, so each value has one
// encoding and each encoding one value (the fuzz tests check both). A later
// version gets a new first line ("doorledger-log/2") and leaves keep the
// version they were made with.
package auditlog

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/doorledger/doorledger"
)

// Version is the encoding version Encode writes.
const Version = 1

const magic = "doorledger-log/1\n"

// TimeLayout is how the encoding writes times (always UTC).
const TimeLayout = "2006-01-02T15:04:05.000000Z"

// Entry is a decoded log entry: one of Audit, Unlock and Purge, by Kind.
type Entry struct {
	Kind   string
	Audit  *doorledger.AuditEntry
	Unlock *doorledger.UnlockEvent
	Purge  *doorledger.LogPurge
}

// ID returns the entry's row id.
func (e *Entry) ID() int64 {
	switch {
	case e.Audit != nil:
		return e.Audit.ID
	case e.Unlock != nil:
		return e.Unlock.ID
	case e.Purge != nil:
		return e.Purge.ID
	}
	return 0
}

// Encode writes the entry's canonical encoding.
func Encode(e *Entry) ([]byte, error) {
	switch {
	case e.Kind == doorledger.LogKindAudit && e.Audit != nil:
		return EncodeAudit(e.Audit)
	case e.Kind == doorledger.LogKindUnlock && e.Unlock != nil:
		return EncodeUnlock(e.Unlock)
	case e.Kind == doorledger.LogKindPurge && e.Purge != nil:
		return EncodePurge(e.Purge)
	}
	return nil, fmt.Errorf("auditlog: encode: kind %q without its entry", e.Kind)
}

// EncodeAudit writes an audit entry's canonical encoding.
func EncodeAudit(a *doorledger.AuditEntry) ([]byte, error) {
	w := newWriter(doorledger.LogKindAudit, 160+len(a.Actor)+len(a.Action)+len(a.ObjectType)+len(a.IP)+len(a.Detail))
	w.int("id", a.ID)
	w.time("at", a.At)
	w.int("actor_id", a.ActorID)
	w.text("actor", a.Actor)
	w.text("action", a.Action)
	w.int("building_id", a.BuildingID)
	w.text("object_type", a.ObjectType)
	w.int("object_id", a.ObjectID)
	w.text("ip", a.IP)
	w.text("detail", a.Detail)
	return w.done()
}

// EncodeUnlock writes an unlock event's canonical encoding.
func EncodeUnlock(u *doorledger.UnlockEvent) ([]byte, error) {
	w := newWriter(doorledger.LogKindUnlock, 220+len(u.DeviceRef)+len(u.EventID)+len(u.Method)+len(u.ActorRef))
	w.int("id", u.ID)
	w.int("building_id", u.BuildingID)
	w.int("device_id", u.DeviceID)
	w.text("device_ref", u.DeviceRef)
	w.text("event_id", u.EventID)
	w.time("occurred_at", u.OccurredAt)
	w.time("received_at", u.ReceivedAt)
	w.text("method", u.Method)
	w.text("actor_ref", u.ActorRef)
	w.text("result", string(u.Result))
	w.words("anomalies", u.Anomalies)
	w.text("source", u.Source)
	return w.done()
}

// EncodePurge writes a purge record's canonical encoding.
func EncodePurge(p *doorledger.LogPurge) ([]byte, error) {
	ids, err := FormatIDRanges(p.IDs)
	if err != nil {
		return nil, fmt.Errorf("auditlog: encode purge %d: %w", p.ID, err)
	}
	w := newWriter(doorledger.LogKindPurge, 200+len(p.Actor)+len(p.Of)+len(ids))
	w.int("id", p.ID)
	w.time("at", p.At)
	w.text("actor", p.Actor)
	w.text("of", p.Of)
	w.int("building_id", p.BuildingID)
	w.time("before", p.Before)
	w.text("ids", ids)
	w.text("leaves_hash", p.LeavesHash.String())
	return w.done()
}

// WithID re-encodes an encoded entry as if its row had another id: how the
// checker recognizes a row's content moved to another row.
func WithID(enc []byte, id int64) ([]byte, error) {
	e, err := Decode(enc)
	if err != nil {
		return nil, err
	}
	switch {
	case e.Audit != nil:
		e.Audit.ID = id
	case e.Unlock != nil:
		e.Unlock.ID = id
	case e.Purge != nil:
		e.Purge.ID = id
	}
	return Encode(e)
}

type writer struct {
	buf []byte
	err error
}

func newWriter(kind string, size int) *writer {
	w := &writer{buf: make([]byte, 0, size)}
	w.buf = append(w.buf, magic...)
	w.text("kind", kind)
	return w
}

func (w *writer) text(name, value string) {
	w.buf = append(w.buf, name...)
	w.buf = append(w.buf, ' ')
	w.buf = strconv.AppendInt(w.buf, int64(len(value)), 10)
	w.buf = append(w.buf, ' ')
	w.buf = append(w.buf, value...)
	w.buf = append(w.buf, '\n')
}

func (w *writer) int(name string, v int64) { w.text(name, strconv.FormatInt(v, 10)) }

func (w *writer) time(name string, t time.Time) {
	s, err := formatTime(t)
	if err != nil && w.err == nil {
		w.err = fmt.Errorf("%s: %w", name, err)
	}
	w.text(name, s)
}

func (w *writer) words(name string, words []string) {
	for _, s := range words {
		if !isWord(s) && w.err == nil {
			w.err = fmt.Errorf("%s: %q is not a word of a-z, 0-9 and _", name, s)
		}
	}
	w.text(name, strings.Join(words, ","))
}

func (w *writer) done() ([]byte, error) {
	if w.err != nil {
		return nil, fmt.Errorf("auditlog: encode: %w", w.err)
	}
	return w.buf, nil
}

func formatTime(t time.Time) (string, error) {
	if t.IsZero() {
		return "", nil
	}
	t = t.UTC()
	if y := t.Year(); y < 0 || y > 9999 {
		return "", fmt.Errorf("year %d out of range", y)
	}
	if t.Nanosecond()%1000 != 0 {
		return "", errors.New("time finer than a microsecond")
	}
	return t.Format(TimeLayout), nil
}

func isWord(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// Decode reads a canonical encoding, refusing anything Encode would not write.
func Decode(b []byte) (*Entry, error) {
	if !bytes.HasPrefix(b, []byte(magic)) {
		if i := bytes.IndexByte(b, '\n'); i > 0 && bytes.HasPrefix(b, []byte("doorledger-log/")) {
			return nil, fmt.Errorf("auditlog: decode: unknown version %q", b[:i])
		}
		return nil, errors.New("auditlog: decode: not a doorledger-log entry")
	}
	r := &reader{b: b[len(magic):]}
	e := &Entry{Kind: r.text("kind")}
	switch e.Kind {
	case doorledger.LogKindAudit:
		a := &doorledger.AuditEntry{}
		a.ID = r.int("id")
		a.At = r.time("at")
		a.ActorID = r.int("actor_id")
		a.Actor = r.text("actor")
		a.Action = r.text("action")
		a.BuildingID = r.int("building_id")
		a.ObjectType = r.text("object_type")
		a.ObjectID = r.int("object_id")
		a.IP = r.text("ip")
		a.Detail = r.text("detail")
		e.Audit = a
	case doorledger.LogKindUnlock:
		u := &doorledger.UnlockEvent{}
		u.ID = r.int("id")
		u.BuildingID = r.int("building_id")
		u.DeviceID = r.int("device_id")
		u.DeviceRef = r.text("device_ref")
		u.EventID = r.text("event_id")
		u.OccurredAt = r.time("occurred_at")
		u.ReceivedAt = r.time("received_at")
		u.Method = r.text("method")
		u.ActorRef = r.text("actor_ref")
		u.Result = doorledger.UnlockResult(r.text("result"))
		u.Anomalies = r.words("anomalies")
		u.Source = r.text("source")
		e.Unlock = u
	case doorledger.LogKindPurge:
		p := &doorledger.LogPurge{}
		p.ID = r.int("id")
		p.At = r.time("at")
		p.Actor = r.text("actor")
		p.Of = r.text("of")
		p.BuildingID = r.int("building_id")
		p.Before = r.time("before")
		if s := r.text("ids"); r.err == nil {
			var err error
			if p.IDs, err = ParseIDRanges(s); err != nil {
				r.fail("ids: %v", err)
			}
		}
		p.LeavesHash = r.hash("leaves_hash")
		e.Purge = p
	default:
		if r.err == nil {
			r.fail("unknown kind %q", e.Kind)
		}
	}
	if r.err == nil && len(r.b) > 0 {
		r.fail("%d bytes after the last field", len(r.b))
	}
	if r.err != nil {
		return nil, fmt.Errorf("auditlog: decode: %w", r.err)
	}
	return e, nil
}

type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf(format, args...)
	}
}

// text reads the field name, which must come next.
func (r *reader) text(name string) string {
	if r.err != nil {
		return ""
	}
	b := r.b
	if len(b) < len(name)+1 || string(b[:len(name)]) != name || b[len(name)] != ' ' {
		r.fail("want field %s", name)
		return ""
	}
	b = b[len(name)+1:]
	sp := bytes.IndexByte(b, ' ')
	if sp < 1 || sp > 19 {
		r.fail("%s: bad length", name)
		return ""
	}
	n, err := strconv.ParseInt(string(b[:sp]), 10, 64)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != string(b[:sp]) {
		r.fail("%s: bad length %q", name, b[:sp])
		return ""
	}
	b = b[sp+1:]
	if int64(len(b)) < n+1 || b[n] != '\n' {
		r.fail("%s: value of %d bytes not ended by a new line", name, n)
		return ""
	}
	r.b = b[n+1:]
	return string(b[:n])
}

func (r *reader) int(name string) int64 {
	s := r.text(name)
	if r.err != nil {
		return 0
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || strconv.FormatInt(v, 10) != s {
		r.fail("%s: %q is not an integer in canonical form", name, s)
	}
	return v
}

func (r *reader) time(name string) time.Time {
	s := r.text(name)
	if r.err != nil || s == "" {
		return time.Time{}
	}
	t, err := time.Parse(TimeLayout, s)
	if err != nil || t.IsZero() || t.Format(TimeLayout) != s {
		r.fail("%s: %q is not a time in canonical form", name, s)
		return time.Time{}
	}
	return t
}

func (r *reader) words(name string) []string {
	s := r.text(name)
	if r.err != nil || s == "" {
		return nil
	}
	words := strings.Split(s, ",")
	for _, w := range words {
		if !isWord(w) {
			r.fail("%s: %q is not a word of a-z, 0-9 and _", name, w)
			return nil
		}
	}
	return words
}

func (r *reader) hash(name string) doorledger.LogHash {
	var h doorledger.LogHash
	s := r.text(name)
	if r.err != nil {
		return h
	}
	h, err := ParseHash(s)
	if err != nil {
		r.fail("%s: %v", name, err)
	}
	return h
}

// ParseHash reads a hash written as 64 lower-case hex digits.
func ParseHash(s string) (doorledger.LogHash, error) {
	var h doorledger.LogHash
	if len(s) != 2*len(h) {
		return h, fmt.Errorf("want %d hex digits, have %d", 2*len(h), len(s))
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil || h.String() != s {
		return doorledger.LogHash{}, fmt.Errorf("%q is not lower-case hex", s)
	}
	return h, nil
}

// FormatIDRanges writes ranges as "1-3,5,8-9". They must be ascending,
// positive, and neither overlap nor touch (write 1-3, not 1-2,3).
func FormatIDRanges(ranges []doorledger.IDRange) (string, error) {
	var b []byte
	for i, r := range ranges {
		switch {
		case r.From < 1 || r.To < r.From:
			return "", fmt.Errorf("bad id range %d-%d", r.From, r.To)
		case i > 0 && r.From <= ranges[i-1].To+1:
			return "", fmt.Errorf("id range %d-%d overlaps or touches %d-%d", r.From, r.To, ranges[i-1].From, ranges[i-1].To)
		}
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, r.From, 10)
		if r.To != r.From {
			b = append(b, '-')
			b = strconv.AppendInt(b, r.To, 10)
		}
	}
	return string(b), nil
}

// ParseIDRanges reads what FormatIDRanges writes, and nothing else.
func ParseIDRanges(s string) ([]doorledger.IDRange, error) {
	if s == "" {
		return nil, nil
	}
	num := func(s string) (int64, error) {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil || strconv.FormatInt(v, 10) != s {
			return 0, fmt.Errorf("%q is not an id", s)
		}
		return v, nil
	}
	var out []doorledger.IDRange
	for _, part := range strings.Split(s, ",") {
		var r doorledger.IDRange
		var err error
		from, to, isRange := strings.Cut(part, "-")
		if r.From, err = num(from); err != nil {
			return nil, err
		}
		r.To = r.From
		if isRange {
			if r.To, err = num(to); err != nil {
				return nil, err
			}
			if r.To == r.From {
				return nil, fmt.Errorf("%q: write a single id without a range", part)
			}
		}
		out = append(out, r)
	}
	if _, err := FormatIDRanges(out); err != nil {
		return nil, err
	}
	return out, nil
}

// IDRanges turns ids (in any order, repeats allowed) into ranges.
func IDRanges(ids []int64) []doorledger.IDRange {
	sorted := append([]int64(nil), ids...)
	slices.Sort(sorted)
	var out []doorledger.IDRange
	for _, id := range sorted {
		if n := len(out); n > 0 && id <= out[n-1].To+1 {
			out[n-1].To = max(out[n-1].To, id)
			continue
		}
		out = append(out, doorledger.IDRange{From: id, To: id})
	}
	return out
}
