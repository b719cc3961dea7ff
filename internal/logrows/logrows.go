// Package logrows reads the rows the verifiable audit log covers (journal
// entries, unlock events, purge records) column by column, strictly, and
// encodes them as the log's leaves (package auditlog), for both storage
// backends (db/sqlite, db/postgres). Each backend runs its own query and
// hands over each row's values as its driver gives them; a value of the
// wrong type makes the row unencodable, which verify reports as changed
// rather than failing.
//
// The columns come in a fixed order, which each backend's SELECT lists:
//
//	audit:  id, at, actor_id, actor, action, building_id, object_type, object_id, ip, detail
//	unlock: id, building_id, device_id (0: none), device_ref, event_id, occurred_at, received_at,
//	        method, actor_ref, result, anomalies (bits), source
//	purge:  id, at, actor, of_kind, building_id, cutoff, ids, leaves_hash
//
// An unlock row read for the log (EncodeUnlock) goes on with its
// redaction: redaction_id (0: none), leaf and redacted hashes; one read for
// a redaction (RedactLeaves) goes on with the hash of its leaf.
package logrows

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/auditlog"
	"github.com/doorledger/doorledger/internal/anomalybits"
)

// Columns is the row being read: its values, set by the backend for each
// row, then Begin.
type Columns struct {
	names  []string
	Vals   []any
	timeOf func(name string, v any) (time.Time, error)
	err    error
	red    *auditlog.LeafRedaction
}

// NewColumns reads rows of the named columns; timeOf reads a time column's
// value as the backend's driver hands it (a NULL one as the zero time), or
// says why it is not a stored time.
func NewColumns(names []string, timeOf func(name string, v any) (time.Time, error)) *Columns {
	return &Columns{names: names, Vals: make([]any, len(names)), timeOf: timeOf}
}

// Begin starts reading the row now in Vals and returns its id (the first
// column).
func (c *Columns) Begin() (int64, error) {
	c.err, c.red = nil, nil
	id, ok := c.Vals[0].(int64)
	if !ok {
		return 0, fmt.Errorf("row id %v is not an integer", c.Vals[0])
	}
	return id, nil
}

// Redaction is what a redaction recorded of the unlock row EncodeUnlock
// read (nil: none).
func (c *Columns) Redaction() *auditlog.LeafRedaction { return c.red }

func (c *Columns) fail(i int, want string) {
	if c.err == nil {
		c.err = fmt.Errorf("%s: %T is not %s", c.names[i], c.Vals[i], want)
	}
}

// Int reads column i as an integer.
func (c *Columns) Int(i int) int64 {
	v, ok := c.Vals[i].(int64)
	if !ok {
		c.fail(i, "an integer")
	}
	return v
}

// Text reads column i as text.
func (c *Columns) Text(i int) string {
	v, ok := c.Vals[i].(string)
	if !ok {
		c.fail(i, "text")
	}
	return v
}

// Time reads column i as a time.
func (c *Columns) Time(i int) time.Time {
	t, err := c.timeOf(c.names[i], c.Vals[i])
	if err != nil && c.err == nil {
		c.err = err
	}
	return t
}

// EncodeAudit encodes a journal entry's row.
func EncodeAudit(c *Columns) ([]byte, error) {
	a := doorledger.AuditEntry{ID: c.Int(0), At: c.Time(1), ActorID: c.Int(2), Actor: c.Text(3), Action: c.Text(4),
		BuildingID: c.Int(5), ObjectType: c.Text(6), ObjectID: c.Int(7), IP: c.Text(8), Detail: c.Text(9)}
	if c.err != nil {
		return nil, c.err
	}
	return auditlog.EncodeAudit(&a)
}

// Unlock reads an unlock event's row.
func Unlock(c *Columns) (*doorledger.UnlockEvent, error) {
	u := doorledger.UnlockEvent{ID: c.Int(0), BuildingID: c.Int(1), DeviceID: c.Int(2), DeviceRef: c.Text(3), EventID: c.Text(4),
		OccurredAt: c.Time(5), ReceivedAt: c.Time(6), Method: c.Text(7), ActorRef: c.Text(8),
		Result: doorledger.UnlockResult(c.Text(9)), Source: c.Text(11)}
	bits := c.Int(10)
	if c.err != nil {
		return nil, c.err
	}
	if bits < 0 || bits > 63 {
		return nil, fmt.Errorf("anomalies: unknown flags %d", bits)
	}
	u.Anomalies = anomalybits.Kinds(bits)
	return &u, nil
}

// EncodeUnlock encodes an unlock event's row read for the log, keeping what
// a redaction recorded of it (Redaction).
func EncodeUnlock(c *Columns) ([]byte, error) {
	if by := c.Int(12); by != 0 && c.err == nil {
		x := &auditlog.LeafRedaction{By: by}
		l, ok1 := c.Vals[13].([]byte)
		r, ok2 := c.Vals[14].([]byte)
		if x.Recorded = ok1 && ok2 && len(l) == 32 && len(r) == 32; x.Recorded {
			copy(x.Logged[:], l)
			copy(x.Redacted[:], r)
		}
		c.red = x
	}
	u, err := Unlock(c)
	if err != nil {
		return nil, err
	}
	return auditlog.EncodeUnlock(u)
}

// EncodePurge encodes a purge record's row.
func EncodePurge(c *Columns) ([]byte, error) {
	p := &doorledger.LogPurge{ID: c.Int(0), At: c.Time(1), Actor: c.Text(2), Of: c.Text(3), BuildingID: c.Int(4), Before: c.Time(5)}
	ids := c.Text(6)
	hash, ok := c.Vals[7].([]byte)
	if !ok || len(hash) != len(p.LeavesHash) {
		c.fail(7, "a hash")
	}
	if c.err != nil {
		return nil, c.err
	}
	copy(p.LeavesHash[:], hash)
	var err error
	if p.IDs, err = auditlog.ParseIDRanges(ids); err != nil {
		return nil, fmt.Errorf("ids: %w", err)
	}
	return auditlog.EncodePurge(p)
}

// RedactLeaves reads an unlock event's row for its redaction, checks it
// against its leaf in the log, and returns that leaf's hash followed by the
// hash of the leaf the event has once redacted (Redactions.Add takes them).
func RedactLeaves(c *Columns) ([]byte, error) {
	u, err := Unlock(c)
	if err != nil {
		return nil, err
	}
	logged, ok := c.Vals[12].([]byte)
	if !ok || len(logged) != 32 {
		return nil, errors.New("no leaf")
	}
	enc, err := auditlog.EncodeUnlock(u)
	if err != nil {
		return nil, err
	}
	var leaf doorledger.LogHash
	copy(leaf[:], logged)
	if auditlog.LeafHash(enc) != leaf {
		return nil, errors.New("the row does not match its leaf")
	}
	red := auditlog.RedactUnlock(*u)
	renc, err := auditlog.EncodeUnlock(&red)
	if err != nil {
		return nil, err
	}
	r := auditlog.LeafHash(renc)
	return append(leaf[:], r[:]...), nil
}

// Redactions gathers one redaction's events. The zero value is empty and
// ready.
type Redactions struct {
	// Leaves are the events, with their leaves before and after, in the
	// order added.
	Leaves []doorledger.RedactedLeaf
	h      auditlog.RedactionHasher
}

// Add adds unlock event id with what RedactLeaves returned of it.
func (rs *Redactions) Add(id int64, leaves []byte) {
	x := doorledger.RedactedLeaf{UnlockID: id}
	copy(x.Logged[:], leaves[:32])
	copy(x.Redacted[:], leaves[32:])
	rs.h.Add(x.UnlockID, x.Logged, x.Redacted)
	rs.Leaves = append(rs.Leaves, x)
}

// Detail is the journal detail of the redaction (the "unlock.redact"
// entry) of the events added, those effective before before (as the log
// writes times).
func (rs *Redactions) Detail(before string) (map[string]any, error) {
	digest, err := rs.h.Sum()
	if err != nil {
		return nil, err
	}
	ids := make([]int64, len(rs.Leaves))
	for i, x := range rs.Leaves {
		ids[i] = x.UnlockID
	}
	ranges, err := auditlog.FormatIDRanges(auditlog.IDRanges(ids))
	if err != nil {
		return nil, err
	}
	return auditlog.MarshalRedactionDetail(auditlog.RedactionDetail{
		Events: int64(len(ids)), IDs: ranges, Before: before, Fields: strings.Join(doorledger.RedactedFields, ","), Digest: digest.String()}), nil
}

// UnlockPurgeHash is the hash of the leaves of the unlock events a purge
// deletes (ids, each once), taken in the log's order from where each is in
// the log (logged, by event id): what the purge record holds. An event not
// in the log cannot be purged.
func UnlockPurgeHash(ids []int64, logged map[int64]doorledger.LogLeaf) (doorledger.LogHash, error) {
	leaves := make([]doorledger.LogLeaf, 0, len(ids))
	for _, id := range ids {
		l, ok := logged[id]
		if !ok {
			return doorledger.LogHash{}, fmt.Errorf("log purge: unlock event %d is not in the log; it cannot be purged", id)
		}
		leaves = append(leaves, l)
	}
	slices.SortFunc(leaves, func(a, b doorledger.LogLeaf) int { return cmp.Compare(a.Index, b.Index) })
	var sum auditlog.PurgeHasher
	for _, l := range leaves {
		sum.Add(l.Index, l.Hash)
	}
	return sum.Sum(), nil
}
