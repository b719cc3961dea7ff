package auditlog

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash"
	"math"

	"github.com/doorledger/doorledger"
)

// Redaction (the privacy profile, doorledger.RedactAction). The retention job
// empties an old event's identifiable fields; its leaf in the log, made from
// the event as received, can no longer be recomputed from the row. So the
// redaction's journal entry, itself a log entry made after the events it
// names, commits to each of them: the digest in its detail is SHA-256 over
// the events in id order, each as its 8-byte big-endian id, its leaf as
// logged, and the leaf hash of its encoding once redacted (RedactedLeaf).
// A redacted row then verifies when its encoding hashes to what the
// redaction recorded, the leaf it recorded is the log's, and the redaction's
// digest matches what it recorded of all its events (kept for good in the
// database, and in an evidence bundle for the events the bundle lacks).

// RedactUnlock returns the event with its identifiable fields emptied, as a
// redaction leaves it.
func RedactUnlock(u doorledger.UnlockEvent) doorledger.UnlockEvent {
	u.ActorRef = ""
	return u
}

// RedactionHasher computes a redaction's digest. The zero value is ready.
type RedactionHasher struct {
	state hash.Hash
	n     int64
	last  int64
	err   error
}

// Add adds an event, in ascending id order.
func (h *RedactionHasher) Add(id int64, logged, redacted doorledger.LogHash) {
	if h.state == nil {
		h.state = sha256.New()
	}
	if id <= h.last && h.err == nil {
		h.err = fmt.Errorf("unlock #%d after #%d", id, h.last)
	}
	h.last = id
	var buf [8 + 32 + 32]byte
	binary.BigEndian.PutUint64(buf[:8], uint64(id))
	copy(buf[8:], logged[:])
	copy(buf[40:], redacted[:])
	h.state.Write(buf[:])
	h.n++
}

// Count is how many events were added.
func (h *RedactionHasher) Count() int64 { return h.n }

// Sum returns the digest, or an error when events came out of order.
func (h *RedactionHasher) Sum() (doorledger.LogHash, error) {
	var d doorledger.LogHash
	if h.err != nil {
		return d, h.err
	}
	if h.state == nil {
		h.state = sha256.New()
	}
	copy(d[:], h.state.Sum(nil))
	return d, nil
}

// RedactionDetail is the detail of a redaction's journal entry.
type RedactionDetail struct {
	Events int64  `json:"events"`
	IDs    string `json:"ids"`
	Before string `json:"before"`
	Fields string `json:"fields"`
	Digest string `json:"digest"`
}

// Redaction is a redaction's journal entry, read.
type Redaction struct {
	IDs    []doorledger.IDRange
	Count  int64
	Digest doorledger.LogHash
}

// Names reports whether the redaction names unlock event id.
func (r *Redaction) Names(id int64) bool {
	for _, x := range r.IDs {
		if x.From <= id && id <= x.To {
			return true
		}
	}
	return false
}

// ParseRedaction reads a redaction's journal entry.
func ParseRedaction(a *doorledger.AuditEntry) (*Redaction, error) {
	if a.Action != doorledger.RedactAction {
		return nil, fmt.Errorf("audit #%d is not a redaction (%s)", a.ID, a.Action)
	}
	var d RedactionDetail
	if err := json.Unmarshal([]byte(a.Detail), &d); err != nil {
		return nil, fmt.Errorf("redaction audit #%d: %w", a.ID, err)
	}
	ids, err := ParseIDRanges(d.IDs)
	if err != nil {
		return nil, fmt.Errorf("redaction audit #%d: ids: %w", a.ID, err)
	}
	digest, err := ParseHash(d.Digest)
	if err != nil {
		return nil, fmt.Errorf("redaction audit #%d: digest: %w", a.ID, err)
	}
	r := &Redaction{IDs: ids, Digest: digest}
	for _, x := range ids {
		r.Count += x.To - x.From + 1
	}
	if r.Count != d.Events {
		return nil, fmt.Errorf("redaction audit #%d: names %d events, says %d", a.ID, r.Count, d.Events)
	}
	return r, nil
}

// RedactionLeaf is a redaction's journal entry as logged, given to the
// checker up front with the digest of what the database recorded of its
// events (RedactionHasher over them): redacted rows of entries before it
// are checked against it.
type RedactionLeaf struct {
	Index int64
	Hash  doorledger.LogHash // the leaf hash the log stored
	Tree0 doorledger.LogHash // the level-0 tree hash stored for it
	Row   []byte             // the journal entry now, encoded
	// Recorded is the digest of what the database recorded of the events it
	// names, and Count how many; Err why it could not be computed.
	Recorded doorledger.LogHash
	Count    int64
	Err      error
	// Pending: the entry is committed but not yet in the log (the
	// sequencer's merge delay). Its rows are checked against it now, and
	// the entry itself once it is logged.
	Pending bool
}

// LeafRedaction is what verification knows of a redacted row: the redaction
// that emptied it and what that recorded of it.
type LeafRedaction struct {
	By       int64              // the redaction's journal entry
	Recorded bool               // the database holds a record of it
	Logged   doorledger.LogHash // the leaf recorded as logged
	Redacted doorledger.LogHash // the leaf hash recorded of what remains
}

type redactCheck struct {
	r     *Redaction
	id    int64 // the journal entry
	index int64
	err   string // why it does not match ("": it does)
}

// AddRedactions gives the checker the log's redaction entries. A redaction
// counts only if its entry is as logged (row, leaf and tree hash agree).
func (c *Checker) AddRedactions(list []RedactionLeaf) {
	if c.redactions == nil {
		c.redactions = map[int64]*redactCheck{}
		c.redactAt = map[int64]*redactCheck{}
	}
	for _, rl := range list {
		if rl.Row == nil || !rl.Pending && (LeafHash(rl.Row) != rl.Hash || rl.Hash != rl.Tree0) {
			continue
		}
		e, err := Decode(rl.Row)
		if err != nil || e.Audit == nil {
			continue
		}
		rc := &redactCheck{id: e.Audit.ID, index: rl.Index}
		switch r, err := ParseRedaction(e.Audit); {
		case err != nil:
			rc.err = err.Error()
		case rl.Err != nil:
			rc.err = rl.Err.Error()
		case rl.Count != r.Count:
			rc.err = fmt.Sprintf("it names %d events, the database recorded %d", r.Count, rl.Count)
		case rl.Recorded != r.Digest:
			rc.err = "what the database recorded of its events does not match its digest"
		default:
			rc.r = r
		}
		c.redactions[rc.id] = rc
		if rl.Pending {
			rc.index = math.MaxInt64 // after every logged entry
			continue
		}
		c.redactAt[rl.Index] = rc
	}
}

// Redacted is how many of the entries checked are rows a logged redaction emptied.
func (c *Checker) Redacted() int64 { return c.redacted }

// redactedLeaf checks a redacted row and returns the leaf hash it stands for.
func (c *Checker) redactedLeaf(l *Leaf) (doorledger.LogHash, string) {
	x := l.Redaction
	rc := c.redactions[x.By]
	switch {
	case l.Kind != doorledger.LogKindUnlock:
		return doorledger.LogHash{}, "only unlock events are redacted"
	case rc == nil || rc.index <= l.Index:
		return doorledger.LogHash{}, fmt.Sprintf("redacted under audit #%d, which is no redaction logged after it", x.By)
	case rc.r == nil:
		return doorledger.LogHash{}, fmt.Sprintf("redacted under audit #%d, which does not match its events: %s", x.By, rc.err)
	case !rc.r.Names(l.RefID) || !x.Recorded:
		return doorledger.LogHash{}, fmt.Sprintf("redacted under audit #%d, which does not name it", x.By)
	case x.Logged != l.Hash:
		return doorledger.LogHash{}, "the redaction recorded another leaf for it than the log's"
	case LeafHash(l.Row) != x.Redacted:
		return doorledger.LogHash{}, "what remains of it is not what its redaction recorded"
	}
	c.redacted++
	return l.Hash, ""
}

// redactionAt checks the redaction logged at entry i, if any.
func (c *Checker) redactionAt(i int64, l *Leaf) *doorledger.LogProblem {
	rc := c.redactAt[i]
	if rc == nil || rc.r != nil {
		return nil
	}
	return &doorledger.LogProblem{What: doorledger.LogRedactMismatch, Index: i, Kind: l.Kind, RefID: l.RefID, Detail: rc.err}
}

// MarshalRedactionDetail writes a redaction's detail.
func MarshalRedactionDetail(d RedactionDetail) map[string]any {
	return map[string]any{"events": d.Events, "ids": d.IDs, "before": d.Before, "fields": d.Fields, "digest": d.Digest}
}
