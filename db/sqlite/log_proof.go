package sqlite

import (
	"context"
	"fmt"
	"slices"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/auditlog"
)

// Head returns the signed head of size entries, or the latest for 0.
func (s *LogService) Head(ctx context.Context, size int64) (*doorledger.LogHead, error) {
	if err := requireLogReader(callerFrom(ctx)); err != nil {
		return nil, err
	}
	var heads []doorledger.LogHead
	var err error
	if size == 0 {
		heads, err = loadLogHeads(ctx, s.db.read, `ORDER BY size DESC LIMIT 1`)
	} else {
		heads, err = loadLogHeads(ctx, s.db.read, `WHERE size = ?`, size)
	}
	if err != nil {
		return nil, err
	} else if len(heads) == 0 {
		return nil, doorledger.Errorf(doorledger.ENOTFOUND, "No signed head of the audit log of that size.")
	}
	return &heads[0], nil
}

// EntryIndex returns a row's position in the log (admins and the system).
func (s *LogService) EntryIndex(ctx context.Context, kind string, refID int64) (int64, error) {
	if err := callerFrom(ctx).requireAdmin(); err != nil {
		return 0, err
	}
	var idx int64
	err := s.db.read.QueryRowContext(ctx, `SELECT idx FROM log_leaves WHERE kind = ? AND ref_id = ?`, kind, refID).Scan(&idx)
	if err != nil {
		return 0, notFound(err, fmt.Sprintf("%s #%d is not in the audit log (yet).", kind, refID))
	}
	return idx, nil
}

func (s *LogService) hashReader(ctx context.Context) auditlog.HashReader {
	return func(idx []int64) ([]doorledger.LogHash, error) { return readLogHashes(ctx, s.db.read, idx) }
}

// ProveInclusion proves entry index is in the tree of size entries (0: the latest head's).
func (s *LogService) ProveInclusion(ctx context.Context, index, size int64) (*doorledger.LogInclusionProof, error) {
	if err := requireLogReader(callerFrom(ctx)); err != nil {
		return nil, err
	}
	if size == 0 {
		h, err := s.Head(ctx, 0)
		if err != nil {
			return nil, err
		}
		size = h.Size
	}
	n, err := logSize(ctx, s.db.read)
	if err != nil {
		return nil, err
	}
	if err := doorledger.CheckInclusion(index, size, n); err != nil {
		return nil, err
	}
	return auditlog.ProveInclusion(index, size, s.hashReader(ctx))
}

// ProveConsistency proves the tree of newSize entries extends that of oldSize.
func (s *LogService) ProveConsistency(ctx context.Context, oldSize, newSize int64) (*doorledger.LogConsistencyProof, error) {
	if err := requireLogReader(callerFrom(ctx)); err != nil {
		return nil, err
	}
	n, err := logSize(ctx, s.db.read)
	if err != nil {
		return nil, err
	}
	if err := doorledger.CheckConsistency(oldSize, newSize, n); err != nil {
		return nil, err
	}
	return auditlog.ProveConsistency(oldSize, newSize, s.hashReader(ctx))
}

// LogLeaves returns where rows of kind are in the log, in the order of ids
// (those not in it left out): the evidence bundle's entries.
func (s *LogService) LogLeaves(ctx context.Context, kind string, ids []int64) ([]doorledger.LogLeaf, error) {
	if err := requireLogReader(callerFrom(ctx)); err != nil {
		return nil, err
	}
	found := make(map[int64]doorledger.LogLeaf, len(ids))
	for _, part := range chunks(slices.Clone(ids), 500) {
		marks, args := inList(part)
		rows, err := s.db.read.QueryContext(ctx, `SELECT ref_id, idx, hash FROM log_leaves WHERE kind = ? AND ref_id IN (`+marks+`)`,
			append([]any{kind}, args...)...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			l := doorledger.LogLeaf{Kind: kind}
			var h []byte
			if err := rows.Scan(&l.RefID, &l.Index, &h); err != nil {
				rows.Close()
				return nil, err
			}
			copy(l.Hash[:], h)
			found[l.RefID] = l
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	out := make([]doorledger.LogLeaf, 0, len(found))
	for _, id := range ids {
		if l, ok := found[id]; ok {
			out = append(out, l)
		}
	}
	return out, nil
}

// ProveInclusions proves the entries at indexes are in the tree of size entries, at once.
func (s *LogService) ProveInclusions(ctx context.Context, indexes []int64, size int64) (*doorledger.LogMultiProof, error) {
	if err := requireLogReader(callerFrom(ctx)); err != nil {
		return nil, err
	}
	n, err := logSize(ctx, s.db.read)
	if err != nil {
		return nil, err
	}
	if err := doorledger.CheckInclusions(indexes, size, n); err != nil {
		return nil, err
	}
	return auditlog.ProveInclusions(indexes, size, s.hashReader(ctx))
}
