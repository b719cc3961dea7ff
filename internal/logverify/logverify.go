// Package logverify is the part of verifying the audit log that both
// storage backends (package sqlite and package postgres) share: joining the
// leaves the log stored with the rows as they are now, and the problem that
// names rows committed but never logged. Each backend reads its own tables;
// package auditlog checks what this package assembles.
package logverify

import (
	"fmt"
	"slices"
	"strings"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/auditlog"
)

// Stored is a row of log_leaves.
type Stored struct {
	Idx  int64
	Kind string
	Ref  int64 // the id of the row it logs
	Enc  int64 // the encoding version
	Hash doorledger.LogHash
}

// Row is a logged table's row, encoded; Err says why it could not be.
type Row struct {
	ID  int64
	Enc []byte
	Err error
	Red *auditlog.LeafRedaction // an unlock event a redaction emptied: what it recorded
}

// Upto returns, by kind, the largest row id stored names: with last (the
// largest before), the id range of the rows to read for the batch.
func Upto(stored []Stored) map[string]int64 {
	upto := map[string]int64{}
	for _, l := range stored {
		upto[l.Kind] = max(upto[l.Kind], l.Ref)
	}
	return upto
}

// Join joins stored leaves with their rows as they are now (rows: by kind,
// by id, those after last up to Upto) and their stored tree hashes (tree:
// by index). last holds, by kind, the largest id of the leaves before, and
// is moved past stored; a row between two logged ones that is itself not
// logged is named as Unlogged.
func Join(stored []Stored, rows map[string][]Row, tree map[int64]doorledger.LogHash, last map[string]int64) []auditlog.Leaf {
	pos := map[string]int{}
	batch := make([]auditlog.Leaf, len(stored))
	for i, s := range stored {
		l := auditlog.Leaf{Index: s.Idx, Kind: s.Kind, RefID: s.Ref, Hash: s.Hash}
		for x := auditlog.StoredHashIndex(0, s.Idx); x < auditlog.StoredHashCount(s.Idx+1); x++ {
			l.Tree = append(l.Tree, tree[x])
		}
		list, p := rows[s.Kind], pos[s.Kind]
		for ; p < len(list) && list[p].ID < s.Ref; p++ {
			if list[p].ID > last[s.Kind] {
				l.Unlogged = append(l.Unlogged, list[p].ID)
			}
		}
		if p < len(list) && list[p].ID == s.Ref {
			l.Row, l.RowErr, l.Redaction = list[p].Enc, list[p].Err, list[p].Red
			if s.Enc != auditlog.Version {
				l.Row, l.RowErr = nil, fmt.Errorf("unknown encoding version %d", s.Enc)
			}
			p++
		}
		pos[s.Kind] = p
		last[s.Kind] = max(last[s.Kind], s.Ref)
		batch[i] = l
	}
	return batch
}

// MaxOverdue bounds the unsequenced rows a verification names.
const MaxOverdue = 10

// TimeLayout is how a verification's problem writes times (package
// sqlite's stored form).
const TimeLayout = "2006-01-02T15:04:05.000000Z"

// Unsequenced keeps the oldest MaxOverdue of v.Overdue (the rows committed
// more than LogMergeDelay before the database's newest row, and not in the
// log; overdue counts them all) and, when the log is otherwise intact, makes
// them its problem. newest is the newest row's time as stored (TimeLayout).
func Unsequenced(v *doorledger.LogVerification, overdue int64, newest string) {
	slices.SortStableFunc(v.Overdue, func(a, b doorledger.LogRowRef) int { return a.At.Compare(b.At) })
	v.Overdue = v.Overdue[:min(len(v.Overdue), MaxOverdue)]
	names := make([]string, len(v.Overdue))
	for i, r := range v.Overdue {
		names[i] = fmt.Sprintf("%s (%s)", r, r.At.UTC().Format(TimeLayout))
	}
	list := strings.Join(names, ", ")
	if overdue > int64(len(names)) {
		list += fmt.Sprintf(" and %d more", overdue-int64(len(names)))
	}
	if v.Problem == nil {
		first := v.Overdue[0]
		v.Problem = &doorledger.LogProblem{What: doorledger.LogUnsequenced, Index: v.Entries, Kind: first.Kind, RefID: first.ID,
			Detail: fmt.Sprintf("%d rows committed more than %s before the database's newest row (%s) are not in the log: %s",
				overdue, doorledger.LogMergeDelay, newest, list)}
	}
}
