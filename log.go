package doorledger

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// The verifiable log. Every audit entry, every unlock event and every retention
// purge is appended, in order, as a leaf of a Merkle tree in the style of
// Certificate Transparency (RFC 6962). The tree's head (its size and root hash)
// is signed with the portal's Ed25519 key, so that anyone holding a signed head
// (printed in every report) can check that an entry is in the log (an inclusion
// proof) and that a later log only appended to it (a consistency proof), and
// `portal audit verify` can recompute the log from the database and name the
// first entry that no longer matches.

// Kinds of log entries: the table a leaf's row lives in.
const (
	LogKindAudit  = "audit"  // audit_entries
	LogKindUnlock = "unlock" // unlock_events
	LogKindPurge  = "purge"  // a retention purge's record (LogPurge)
)

// LogHash is a SHA-256 hash in the log: a leaf, an inner node or a tree's root.
type LogHash [32]byte

// String returns the hash in lower-case hex.
func (h LogHash) String() string { return hex.EncodeToString(h[:]) }

// LogHead is a signed head of the log: the tree of its first Size entries.
type LogHead struct {
	Size int64
	Root LogHash
	// Note is the signed note (golang.org/x/mod/sumdb/note) of the tree's
	// text, as any note verifier reads it with the portal's verifier key.
	Note string
	At   time.Time // when it was signed (UTC)
}

// legacyHeadHeader is the first line of the heads signed before heads
// were C2SP checkpoints (golang.org/x/mod/sumdb/tlog.FormatTree's).
const legacyHeadHeader = "go.sum database tree"

// Origin is the log's origin line, as the head's checkpoint begins
// (c2sp.org/tlog-checkpoint); "" for a head signed before checkpoints,
// which named no log. It reads the note's text; checking the note's
// signature is auditlog.OpenHead's.
func (h *LogHead) Origin() string { return NoteOrigin(h.Note) }

// NoteOrigin is the origin line of a signed head's note (LogHead.Origin).
func NoteOrigin(note string) string {
	line, _, _ := strings.Cut(note, "\n")
	if line == legacyHeadHeader {
		return ""
	}
	return line
}

// IDRange is the ids From to To, both included.
type IDRange struct{ From, To int64 }

// LogPurge records that the retention purge deleted rows whose leaves are in
// the log. The leaves stay; only the rows go, and verify accepts exactly the
// rows named by a logged purge being absent.
type LogPurge struct {
	ID         int64
	At         time.Time // UTC
	Actor      string    // who ran the purge ("system" for the daily job)
	Of         string    // the kind of rows purged (LogKindUnlock)
	BuildingID int64
	Before     time.Time // the cutoff: rows older than this were purged
	IDs        []IDRange // the purged rows' ids, sorted, neither overlapping nor adjacent
	// LeavesHash is the SHA-256 of the purged rows' leaves, in log order, each
	// as its 8-byte big-endian position followed by its 32-byte leaf hash.
	LeavesHash LogHash
}

// Count is how many ids the purge names.
func (p *LogPurge) Count() int64 {
	var n int64
	for _, r := range p.IDs {
		n += r.To - r.From + 1
	}
	return n
}

// What a verification found wrong (LogProblem.What).
const (
	LogChanged        = "changed"                            // the row no longer encodes to its leaf
	LogMissing        = "missing"                            // the row is gone (and no logged purge names it)
	LogOutOfOrder     = "out of order"                       // rows (or log entries) were swapped or moved
	LogNotInLog       = "not in the log"                     // a row sits among logged ones but was never logged
	LogAltered        = "log altered"                        // the log's own tables (leaves, tree hashes) were altered
	LogPurgeMismatch  = "purge mismatch"                     // a purge record does not match the leaves it names
	LogRedactMismatch = "redaction mismatch"                 // a redaction's record does not match the events it names
	LogBadHead        = "signature does not verify"          // a signed head's signature, or its stored copy, does not verify
	LogHeadMismatch   = "root does not match the entries"    // a signed head does not match the entries
	LogTruncated      = "entries missing from the log's end" // a signed head covers entries the log no longer has
	LogUnsequenced    = "not sequenced"                      // a row committed LogMergeDelay before the newest row is still not in the log
)

// LogMergeDelay is how long a committed row may wait to be sequenced: the
// sequencer runs every second, and graceful shutdown sequences everything
// committed before it closes the database. Verify judges it by the rows'
// own times (the newest row's, not the clock's), so that a backup or a copy
// verifies the same days later: a row older than the newest by more than
// this and still not in the log is a problem; a younger one is only "not yet
// logged" (a crash may leave those, and the next start sequences them).
const LogMergeDelay = time.Minute

// LogProblem is the first thing a verification found wrong.
type LogProblem struct {
	What   string
	Index  int64  // the entry's position in the log; for a head, its size - 1
	Kind   string // the entry's kind ("" for a head)
	RefID  int64  // the entry's row id
	Size   int64  // for a head: its size
	Detail string // more, for people
}

// String says where and what, as in "entry 1234 (audit #567): changed".
func (p *LogProblem) String() string {
	var s string
	switch p.What {
	case LogOutOfOrder:
		s = fmt.Sprintf("entries out of order at %d", p.Index)
	case LogNotInLog:
		s = fmt.Sprintf("%s #%d: not in the log (found before entry %d)", p.Kind, p.RefID, p.Index)
	case LogBadHead, LogHeadMismatch, LogTruncated:
		s = fmt.Sprintf("signed head at size %d: %s", p.Size, p.What)
	case LogUnsequenced:
		s = fmt.Sprintf("%s #%d: %s", p.Kind, p.RefID, p.What)
	default:
		if p.Kind == "" {
			s = fmt.Sprintf("entry %d: %s", p.Index, p.What)
		} else {
			s = fmt.Sprintf("entry %d (%s #%d): %s", p.Index, p.Kind, p.RefID, p.What)
		}
	}
	if p.Detail != "" {
		s += " (" + p.Detail + ")"
	}
	return s
}

// LogVerification is what verifying the log found.
type LogVerification struct {
	Entries     int64       // entries checked: the log's size
	Purged      int64       // of them, unlock events deleted by a logged retention purge
	Redacted    int64       // of them, unlock events whose identifiable fields a logged redaction removed
	Pending     int64       // rows committed but not yet in the log, within LogMergeDelay of the newest row (not checked)
	Newest      time.Time   // the time of the database's newest row: what "within LogMergeDelay" is judged by
	Overdue     []LogRowRef // rows older than that and still not in the log (the first few; Problem names them)
	Heads       int         // signed heads checked
	Head        *LogHead    // the latest signed head; nil when none yet
	VerifierKey string      // the key the heads were checked with
	Problem     *LogProblem // the first mismatch; nil when the log is intact
}

// LogRowRef names a row the log should hold, with its recorded time.
type LogRowRef struct {
	Kind string
	ID   int64
	At   time.Time
}

// String is "audit #12".
func (r LogRowRef) String() string { return fmt.Sprintf("%s #%d", r.Kind, r.ID) }

// OK reports whether the log is intact.
func (v *LogVerification) OK() bool { return v.Problem == nil }

// LogInclusionProof proves that the entry at Index, whose leaf hash is
// LeafHash, is in the tree of the first Size entries.
type LogInclusionProof struct {
	Index    int64
	Size     int64
	LeafHash LogHash
	Hashes   []LogHash
}

// LogConsistencyProof proves that the tree of the first NewSize entries
// extends the tree of the first OldSize: the log only appended in between.
type LogConsistencyProof struct {
	OldSize int64
	NewSize int64
	Hashes  []LogHash
}

// LogLeaf is where a row is in the log.
type LogLeaf struct {
	Kind  string
	RefID int64
	Index int64
	Hash  LogHash // the leaf hash the log holds for it
}

// UnlockRedaction is a redaction's journal entry with what it recorded of
// each event it names.
type UnlockRedaction struct {
	Entry  *AuditEntry
	Events []RedactedLeaf // by id
}

// RedactedLeaf is what a redaction recorded of one event: its leaf as logged
// and the leaf hash of the event's encoding once redacted.
type RedactedLeaf struct {
	UnlockID int64
	Logged   LogHash
	Redacted LogHash
}

// LogNode is a complete subtree of the log's tree, the 2^Level entries from
// Index<<Level, and its hash (at level 0, an entry's leaf hash).
type LogNode struct {
	Level int
	Index int64
	Hash  LogHash
}

// LogMultiProof proves that the entries at Indexes (ascending) are in the
// tree of the first Size entries: with their leaf hashes, Nodes give the
// tree's root. It holds each node the entries need once, and none that the
// entries themselves give, in the order a walk of the tree from left to
// right needs them (RFC 6962 trees; the bundle's verifier reads them so).
type LogMultiProof struct {
	Size    int64
	Indexes []int64
	Nodes   []LogNode
}

// LogService keeps the verifiable log. Sequencing and signing take any
// signed-in caller (or the system); reading heads and proofs, one other than
// an installer (proofs hold only hashes); Verify and EntryIndex, an admin.
// Other callers get EUNAUTHORIZED or EFORBIDDEN.
type LogService interface {
	// Sequence appends to the log, in order and in batches, every audit entry,
	// unlock event and purge record committed since the last one it appended,
	// and signs a head for the new size when the latest head is older than the
	// service's head interval. The background job calls it every second.
	Sequence(ctx context.Context) (appended int64, err error)
	// SignHead is Sequence, then signs a head for the log's size now if it has
	// none yet, and returns that head: reports call it to print a current head.
	SignHead(ctx context.Context) (*LogHead, error)
	// Head returns the signed head of the given size (0: the latest). ENOTFOUND.
	Head(ctx context.Context, size int64) (*LogHead, error)
	// Verify recomputes the log from the rows and reports the first mismatch.
	Verify(ctx context.Context) (*LogVerification, error)
	// EntryIndex returns the position of a row in the log. ENOTFOUND when it is
	// not (yet) in the log.
	EntryIndex(ctx context.Context, kind string, refID int64) (int64, error)
	// ProveInclusion proves that entry index is in the tree of size (0: the
	// latest signed head's). EINVALID for an index or size out of range.
	ProveInclusion(ctx context.Context, index, size int64) (*LogInclusionProof, error)
	// ProveConsistency proves that the tree of newSize extends that of oldSize.
	// EINVALID for sizes out of range.
	ProveConsistency(ctx context.Context, oldSize, newSize int64) (*LogConsistencyProof, error)
	// LogLeaves returns where the rows of kind with the given ids are in the
	// log, in the order of ids; ids not (yet) in the log are left out.
	LogLeaves(ctx context.Context, kind string, ids []int64) ([]LogLeaf, error)
	// ProveInclusions proves, at once, that the entries at indexes (ascending,
	// distinct) are in the tree of size entries. EINVALID for an index or
	// size out of range.
	ProveInclusions(ctx context.Context, indexes []int64, size int64) (*LogMultiProof, error)
	// VerifierKey returns the key that verifies the heads' signatures, as
	// "<name>+<hash>+<key>" (golang.org/x/mod/sumdb/note), the name being the
	// log's origin: shown in the admin pages and printed in every report.
	VerifierKey() string
	// Origin returns the log's origin line, chosen once at first start,
	// which every checkpoint begins with ("" when not known).
	Origin() string
}

// CheckLogReader refuses installers the log's heads and proofs (the role
// of a signed-in caller): EFORBIDDEN.
func CheckLogReader(role Role) error {
	if role == RoleInstaller {
		return Errorf(EFORBIDDEN, "Installers do not see the audit log.")
	}
	return nil
}

// CheckInclusion checks a proof that entry index is in the tree of size
// entries, the log having n: EINVALID out of range.
func CheckInclusion(index, size, n int64) error {
	if index < 0 || index >= size || size > n {
		return Errorf(EINVALID, "Entry %d is not in a log of %d entries (the log has %d).", index, size, n)
	}
	return nil
}

// CheckConsistency checks a proof that the tree of newSize entries extends
// that of oldSize, the log having n: EINVALID out of range.
func CheckConsistency(oldSize, newSize, n int64) error {
	if oldSize < 1 || oldSize > newSize || newSize > n {
		return Errorf(EINVALID, "Cannot prove a log of %d entries extends one of %d (the log has %d).", newSize, oldSize, n)
	}
	return nil
}

// CheckInclusions checks a proof that the entries at indexes (ascending,
// distinct) are in the tree of size entries, the log having n: EINVALID
// for the size, or the first index, out of range.
func CheckInclusions(indexes []int64, size, n int64) error {
	if size < 0 || size > n {
		return Errorf(EINVALID, "Cannot prove entries in a log of %d entries (the log has %d).", size, n)
	}
	for i, x := range indexes {
		if x < 0 || x >= size || (i > 0 && x <= indexes[i-1]) {
			return Errorf(EINVALID, "Entry %d is not in a log of %d entries, or the entries are not ascending.", x, size)
		}
	}
	return nil
}
