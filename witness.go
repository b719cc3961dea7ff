package doorledger

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Witnesses: independent parties that cosign the log's checkpoints only
// after checking each is consistent with every checkpoint they cosigned
// before (c2sp.org/tlog-witness), so that the operator cannot show one board
// one history and another board another (docs/witnesses.md). An admin
// configures them and a policy "k of n"; the portal submits each new signed
// head to each witness and keeps the cosignatures, append-only.

// Witness is a witness the portal submits its checkpoints to.
type Witness struct {
	ID          int64
	Name        string // the admin's label, as in "Board's lawyer"
	URL         string // base URL: add-checkpoint is beside it
	VerifierKey string // its cosignature key, "<name>+<hash>+<key>" (c2sp.org/tlog-cosignature)
	AddedAt     time.Time

	// Submission state.
	Cosigned    int64     // the size of the latest head it cosigned (0: none)
	CosignedAt  time.Time // when that cosignature arrived
	KnownSize   int64     // the size it said it was at in its last 409 (-1: none since its last cosignature)
	Failures    int       // attempts failed in a row
	NextAttempt time.Time // not before
	LastError   string    // the last attempt's failure ("" after a cosignature)
	// Alarm is its latest refusal that is a security event (a consistency
	// proof or signature it did not accept) with no cosignature since; nil
	// when none.
	Alarm *WitnessRefusal
}

// WitnessInput is what an admin enters to add a witness.
type WitnessInput struct {
	Name        string
	URL         string
	VerifierKey string
}

// WitnessRefusal is a witness's refusal of a checkpoint.
type WitnessRefusal struct {
	ID        int64
	WitnessID int64
	Witness   string // its label
	Size      int64  // the checkpoint refused
	Status    int    // the HTTP status it answered (0: the portal refused its answer)
	Reason    string
	Security  bool // a failed consistency proof or signature: the log may be forked
	At        time.Time
}

// Cosignature is a witness's cosignature of the signed head of Size.
type Cosignature struct {
	WitnessID   int64
	Witness     string // the admin's label
	VerifierKey string // the key it verifies with
	Size        int64
	Line        string    // the signature line, "— <name> <base64>"
	SignedAt    time.Time // the time the witness put in its cosignature
	ReceivedAt  time.Time
}

// WitnessPolicy is "K of N witnesses": a head is witnessed when K of the N
// configured witnesses cosigned it. K = 0 asks for none.
type WitnessPolicy struct {
	K, N int
}

// Met reports whether cosignatures by that many distinct configured
// witnesses meet the policy.
func (p WitnessPolicy) Met(cosigners int) bool { return cosigners >= p.K }

// WitnessKey is a configured witness as a report records it: its label and
// its cosignature verifier key.
type WitnessKey struct {
	Name        string
	VerifierKey string
}

// WitnessedHead is a signed head and the cosignatures of it by configured
// witnesses, with the policy and the witnesses configured when it was read.
// Head is nil when no head meets the policy.
type WitnessedHead struct {
	Head         *LogHead
	Cosignatures []Cosignature
	Policy       WitnessPolicy
	Configured   []WitnessKey
}

// Missing names the configured witnesses with no cosignature of Head.
func (w *WitnessedHead) Missing() []string {
	have := map[string]bool{}
	for _, c := range w.Cosignatures {
		have[c.VerifierKey] = true
	}
	var out []string
	for _, k := range w.Configured {
		if !have[k.VerifierKey] {
			out = append(out, k.Name)
		}
	}
	return out
}

// CosignedNote is Head's signed note with the witnesses' cosignature lines
// after the log's signature: a cosigned checkpoint, as c2sp.org/tlog-witness
// clients read it ("" without a Head).
func (w *WitnessedHead) CosignedNote() string {
	if w == nil || w.Head == nil {
		return ""
	}
	s := w.Head.Note
	for _, c := range w.Cosignatures {
		s += c.Line + "\n"
	}
	return s
}

// Summary says, for people, who vouched for the head: "cosigned by 1 of 2
// witnesses (Alice 2026-12-07 17:40 UTC); missing: Bob", or why none did.
func (w *WitnessedHead) Summary() string {
	if w == nil || w.Policy.N == 0 {
		return "no witnesses configured: the log is signed by the portal's key alone"
	}
	if w.Head == nil {
		return fmt.Sprintf("no checkpoint met the policy (%d of %d witnesses) yet; missing: %s", w.Policy.K, w.Policy.N, JoinAnd(w.Missing()))
	}
	who := make([]string, len(w.Cosignatures))
	for i, c := range w.Cosignatures {
		who[i] = c.Witness + " " + c.SignedAt.UTC().Format("2006-01-02 15:04 UTC")
	}
	s := fmt.Sprintf("cosigned by %d of %d witnesses", len(w.Cosignatures), w.Policy.N)
	if len(who) > 0 {
		s += " (" + strings.Join(who, ", ") + ")"
	}
	if m := w.Missing(); len(m) > 0 {
		s += "; missing: " + JoinAnd(m)
	}
	return s
}

// WitnessService keeps the witnesses, the policy and the cosignatures.
// Configuring them takes an admin; reading cosignatures and the policy,
// anyone who may read the log (not installers); the submission side
// (Due…, Record…), the system or an admin. Others get EUNAUTHORIZED or
// EFORBIDDEN.
type WitnessService interface {
	// Witnesses lists the configured witnesses with their state.
	Witnesses(ctx context.Context) ([]*Witness, error)
	// AddWitness configures a witness. EINVALID (per field) for a missing
	// name, a URL that is not http(s), a key that is not a witness's
	// cosignature key, or a name or key already configured.
	AddWitness(ctx context.Context, in WitnessInput) (*Witness, error)
	// RemoveWitness stops submitting to a witness; its cosignatures stay
	// but no longer count. ENOTFOUND. ECONFLICT when the policy would ask
	// for more witnesses than remain.
	RemoveWitness(ctx context.Context, id int64) error
	// SetWitnessPolicy sets K. EINVALID when K is negative or above N.
	SetWitnessPolicy(ctx context.Context, k int) error
	// WitnessPolicy returns the policy.
	WitnessPolicy(ctx context.Context) (WitnessPolicy, error)
	// WitnessRefusals returns the latest refusals, newest first.
	WitnessRefusals(ctx context.Context, limit int) ([]*WitnessRefusal, error)

	// DueWitnesses returns the witnesses whose next attempt is due by the
	// database's clock.
	DueWitnesses(ctx context.Context) ([]*Witness, error)
	// RecordCosignature keeps a witness's cosignature (checked by the
	// caller) of the signed head of size. Kept once; ENOTFOUND for a size
	// with no signed head.
	RecordCosignature(ctx context.Context, witnessID, size int64, line string, signedAt time.Time) error
	// RecordFailure notes a failed attempt: the next waits longer (doubling
	// from a few seconds to ten minutes). A 409 (knownSize >= 0) is routine:
	// it records the witness's size and retries at once.
	RecordFailure(ctx context.Context, witnessID int64, reason string, knownSize int64) error
	// RecordRefusal keeps a witness's refusal, journals it and mails every
	// admin; a security refusal says so loudly. It backs off like RecordFailure.
	RecordRefusal(ctx context.Context, r *WitnessRefusal) error

	// Cosignatures returns the cosignatures by configured witnesses of the
	// signed heads of size and more, by size then witness: a report's own
	// head's, and those that arrived later for later heads.
	Cosignatures(ctx context.Context, fromSize int64) ([]Cosignature, error)
	// LatestWitnessed returns the largest signed head of at most maxSize
	// entries (0: any) whose cosignatures meet the policy (with K = 0, that
	// any witness cosigned); Head is nil when none does.
	LatestWitnessed(ctx context.Context, maxSize int64) (*WitnessedHead, error)
}
