package reports

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/auditlog"
)

// Redacted events in the evidence bundle (the privacy profile). A redacted
// event's row no longer gives its leaf in the log. Its line of
// log-proof.jsonl carries the leaf its redaction recorded ("redacted": the
// redaction's journal entry and that leaf), which the tree's root then
// proves; redactions.jsonl carries each such redaction's journal entry (its
// detail holds the digest of what it recorded of every event it names, see
// auditlog.RedactionHasher), proved in the log like audit.jsonl's, with what
// it recorded of the events events.csv does not hold. The verifier
// recomputes the digest from those and from the rows of events.csv, so a
// changed row, a changed recorded leaf or a missing event fails.

const redactionFormat = "doorledger-redaction-proof/1"

// redactionLine is a line of redactions.jsonl: the redaction's journal entry
// as audit.jsonl writes one, and what it recorded of the events the bundle
// lacks, as [id, leaf as logged, leaf hash of what remains].
type redactionLine struct {
	auditLine
	Others [][3]any `json:"others"`
}

// redacted returns what a redaction of the report recorded of event id, or nil.
func (b *bundle) redacted(id int64) *redactedEvent {
	if b.redactedBy == nil {
		b.redactedBy = map[int64]*redactedEvent{}
		for _, r := range b.r.Redactions {
			if r == nil || r.Entry == nil {
				continue
			}
			for _, l := range r.Events {
				b.redactedBy[l.UnlockID] = &redactedEvent{by: r.Entry.ID, leaf: l}
			}
		}
	}
	return b.redactedBy[id]
}

// proveRedactions finds each redaction's entry in the log, like audit.jsonl's.
func (b *bundle) proveRedactions(ctx context.Context, log Prover, why func(doorledger.LogHash, doorledger.LogLeaf, bool) string,
	add func(index int64, leaf doorledger.LogHash)) error {
	var ids []int64
	for _, r := range b.r.Redactions {
		if r != nil && r.Entry != nil {
			ids = append(ids, r.Entry.ID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	leaves, err := leavesByID(ctx, log, doorledger.LogKindAudit, ids)
	if err != nil {
		return err
	}
	for _, r := range b.r.Redactions {
		if r == nil || r.Entry == nil {
			continue
		}
		e := r.Entry
		be := bundleEntry{line: auditLine{Format: redactionFormat, Kind: doorledger.LogKindAudit, ID: e.ID, Entry: auditJSON{
			ID: e.ID, At: logTime(e.At), ActorID: e.ActorID, Actor: e.Actor, Action: e.Action, BuildingID: e.BuildingID,
			ObjectType: e.ObjectType, ObjectID: e.ObjectID, IP: e.IP, Detail: e.Detail,
		}}}
		enc, err := auditlog.EncodeAudit(e)
		if err != nil {
			return fmt.Errorf("redaction audit #%d: %w", e.ID, err)
		}
		be.leaf = auditlog.LeafHash(enc)
		be.line.Encoding, be.line.LeafHash = base64.StdEncoding.EncodeToString(enc), be.leaf.String()
		if b.r.LogHead == nil {
			be.line.Reason = "the report has no signed head of the log to prove it against"
		} else {
			l, found := leaves[e.ID]
			if found {
				be.line.Index = &l.Index
			}
			if be.line.Reason = why(be.leaf, l, found); be.line.Reason == "" {
				be.line.Proved = true
				add(l.Index, be.leaf)
			}
		}
		b.redactions = append(b.redactions, bundleRedaction{entry: be, r: r})
	}
	return nil
}

// redactionsFile adds redactions.jsonl when the report has redacted events.
func (b *bundle) redactionsFile() error {
	if len(b.redactions) == 0 {
		return nil
	}
	var buf bytes.Buffer
	for _, r := range b.redactions {
		line := redactionLine{auditLine: r.entry.line, Others: [][3]any{}}
		for _, l := range r.r.Events {
			if x := b.redactedBy[l.UnlockID]; x == nil || !x.in {
				line.Others = append(line.Others, [3]any{l.UnlockID, l.Logged.String(), l.Redacted.String()})
			}
		}
		data, err := marshalJSON(line, false)
		if err != nil {
			return fmt.Errorf("evidence bundle %s: redaction %d: %w", b.r.ID, r.entry.line.ID, err)
		}
		buf.Write(data)
	}
	b.add(bundleRedacted, buf.Bytes())
	return nil
}
