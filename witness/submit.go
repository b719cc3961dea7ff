package witness

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/doorledger/doorledger"
	"golang.org/x/mod/sumdb/tlog"
)

// Submitter brings every configured witness up to the log's latest signed
// head: it submits the head with the consistency proof from the size that
// witness last cosigned (or, after a 409, the size it named), checks the
// cosignature it answers with against the witness's key and keeps it. A
// 409 is retried at once from the witness's size; a refusal is recorded
// (which alerts the admins); anything else backs off (the service keeps
// when to try next, by the database's clock).
type Submitter struct {
	Log       doorledger.LogService
	Witnesses doorledger.WitnessService
	HTTP      *http.Client
}

// Run makes one pass over the witnesses due an attempt. The caller is the
// system (the portal's background job).
func (s *Submitter) Run(ctx context.Context) error {
	due, err := s.Witnesses.DueWitnesses(ctx)
	if err != nil || len(due) == 0 {
		return err
	}
	head, err := s.Log.Head(ctx, 0)
	if doorledger.ErrorCode(err) == doorledger.ENOTFOUND {
		return nil // nothing signed yet
	} else if err != nil {
		return err
	}
	var errs []error
	for _, w := range due {
		if err := s.submit(ctx, w, head); err != nil && ctx.Err() == nil {
			errs = append(errs, fmt.Errorf("witness %s: %w", w.Name, err))
		}
	}
	return errors.Join(errs...)
}

// submit brings one witness to head; only errors of the portal's own
// (storage) are returned: the witness's are recorded.
func (s *Submitter) submit(ctx context.Context, w *doorledger.Witness, head *doorledger.LogHead) error {
	if w.Cosigned >= head.Size {
		return nil
	}
	v, err := ParseVerifierKey(w.VerifierKey)
	if err != nil {
		return err // validated when added: not expected
	}
	old := w.Cosigned
	if w.KnownSize >= 0 {
		old = w.KnownSize
	}
	for try := 0; try < 2; try++ {
		if old > head.Size {
			// The witness cosigned a larger tree of this log than the log
			// now has: the log lost entries, or was rolled back.
			return s.Witnesses.RecordRefusal(ctx, &doorledger.WitnessRefusal{WitnessID: w.ID, Size: head.Size, Security: true,
				Reason: fmt.Sprintf("the witness cosigned %d entries of this log before; the log now has %d (rolled back or truncated)", old, head.Size)})
		}
		var proof []tlog.Hash
		if old > 0 && old < head.Size {
			p, err := s.Log.ProveConsistency(ctx, old, head.Size)
			if err != nil {
				return err
			}
			for _, h := range p.Hashes {
				proof = append(proof, tlog.Hash(h))
			}
		}
		sigs, err := Submit(ctx, s.HTTP, w.URL, old, proof, head.Note)
		var c *Conflict
		if errors.As(err, &c) {
			if err := s.Witnesses.RecordFailure(ctx, w.ID, err.Error(), c.Size); err != nil {
				return err
			}
			// From its size; at this size already (its answer was lost),
			// with an empty proof: it cosigns the same root again and
			// refuses another.
			old = c.Size
			continue
		}
		if r, ok := IsRefused(err); ok {
			return s.Witnesses.RecordRefusal(ctx, &doorledger.WitnessRefusal{WitnessID: w.ID, Size: head.Size, Status: r.Status, Reason: r.Reason, Security: r.Security()})
		}
		if err != nil {
			return s.Witnesses.RecordFailure(ctx, w.ID, err.Error(), -1)
		}
		line := Line(v, sigs)
		at, err := CheckCosignature(v, head.Note, line)
		if err != nil {
			return s.Witnesses.RecordRefusal(ctx, &doorledger.WitnessRefusal{WitnessID: w.ID, Size: head.Size, Security: true,
				Reason: "its answer is not a valid cosignature by the key configured for it: " + err.Error()})
		}
		return s.Witnesses.RecordCosignature(ctx, w.ID, head.Size, line, at)
	}
	return nil
}
