package witness

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"filippo.io/torchwood"
	"github.com/doorledger/doorledger"
	"golang.org/x/mod/sumdb/tlog"
)

// Trusted is a witness someone trusts: a label and its cosignature key.
type Trusted struct {
	Label       string
	VerifierKey string
}

// Voucher is what one trusted witness says of a head: the first head at
// least as large that it cosigned, which the head is proven consistent with.
type Voucher struct {
	Trusted
	Vouched  bool
	Size     int64     // the head it cosigned
	SignedAt time.Time // the time in its cosignature
	Problem  string    // why it does not vouch ("" when it does)
}

// ParseTrusted reads a board's witness list: one key a line as each witness
// printed it, an optional label before it, "k N" for how many must vouch
// (all, when not given), "#" comments. EINVALID, naming the line, for
// anything else.
func ParseTrusted(text string) (list []Trusted, k int, err error) {
	k = -1
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if fields[0] == "k" && len(fields) == 2 {
			if k, err = strconv.Atoi(fields[1]); err != nil || k < 0 {
				return nil, 0, doorledger.Errorf(doorledger.EINVALID, "Line %d: k wants a whole number.", i+1)
			}
			continue
		}
		vkey := fields[len(fields)-1]
		v, err := ParseVerifierKey(vkey)
		if err != nil {
			return nil, 0, doorledger.Errorf(doorledger.EINVALID, "Line %d: %s.", i+1, err.Error())
		}
		label := strings.Join(fields[:len(fields)-1], " ")
		if label == "" {
			label = v.Name()
		}
		list = append(list, Trusted{Label: label, VerifierKey: vkey})
	}
	if k < 0 || k > len(list) {
		k = len(list)
	}
	return list, k, nil
}

// Vouch says, for each trusted witness, whether it vouched for head: among
// the cosignatures the portal holds of heads of head's size or more, the
// first by that witness's key that verifies over the head it cosigned, a
// head the log proves (tlog.CheckTree) extends this one. Cosignatures
// arrived after a report was issued count: an issued report does not
// change, what vouches for it may grow.
func Vouch(ctx context.Context, logs doorledger.LogService, witnesses doorledger.WitnessService, head *doorledger.LogHead, trusted []Trusted) ([]Voucher, error) {
	cosigs, err := witnesses.Cosignatures(ctx, head.Size)
	if err != nil {
		return nil, err
	}
	out := make([]Voucher, len(trusted))
	for i, t := range trusted {
		out[i] = Voucher{Trusted: t, Problem: "no cosignature of this head or a later one"}
		v, err := ParseVerifierKey(t.VerifierKey)
		if err != nil {
			out[i].Problem = err.Error()
			continue
		}
		for _, c := range cosigs {
			if c.VerifierKey != v.String() {
				continue
			}
			at, err := vouchedAt(ctx, logs, v, head, c)
			if err != nil {
				out[i].Problem = err.Error()
				continue
			}
			out[i].Vouched, out[i].Size, out[i].SignedAt, out[i].Problem = true, c.Size, at, ""
			break
		}
	}
	return out, nil
}

func vouchedAt(ctx context.Context, logs doorledger.LogService, v *torchwood.CosignatureVerifier, head *doorledger.LogHead, c doorledger.Cosignature) (time.Time, error) {
	later, err := logs.Head(ctx, c.Size)
	if err != nil {
		return time.Time{}, err
	}
	at, err := CheckCosignature(v, later.Note, c.Line)
	if err != nil {
		return time.Time{}, fmt.Errorf("its cosignature of %d entries does not verify over the head the portal holds", c.Size)
	}
	text, _, _ := strings.Cut(later.Note, "\n\n")
	cp, err := torchwood.ParseCheckpoint(text + "\n")
	if err != nil {
		return time.Time{}, err
	}
	if c.Size == head.Size {
		if cp.Hash != tlog.Hash(head.Root) {
			return time.Time{}, errors.New("it cosigned another root of this size: the log was forked")
		}
		return at, nil
	}
	p, err := logs.ProveConsistency(ctx, head.Size, c.Size)
	if err != nil {
		return time.Time{}, err
	}
	proof := make(tlog.TreeProof, len(p.Hashes))
	for i, h := range p.Hashes {
		proof[i] = tlog.Hash(h)
	}
	if err := tlog.CheckTree(proof, c.Size, cp.Hash, head.Size, tlog.Hash(head.Root)); err != nil {
		return time.Time{}, fmt.Errorf("the head it cosigned (%d entries) does not extend this one", c.Size)
	}
	return at, nil
}

// Summary says which of the trusted witnesses vouched, of the k required:
// "vouched for by 2 of 2 witnesses (Alice 2026-12-07 17:40 UTC, Bob …)",
// then the missing ones.
func Summary(vs []Voucher, k int) (string, bool) {
	var who, missing []string
	for _, v := range vs {
		if v.Vouched {
			who = append(who, v.Label+" "+v.SignedAt.Format("2006-01-02 15:04 UTC"))
		} else {
			missing = append(missing, v.Label+" ("+v.Problem+")")
		}
	}
	s := fmt.Sprintf("vouched for by %d of %d witnesses", len(who), len(vs))
	if len(who) > 0 {
		s += " (" + strings.Join(who, ", ") + ")"
	}
	if len(missing) > 0 {
		s += "; missing: " + strings.Join(missing, ", ")
	}
	ok := len(who) >= k
	if !ok {
		s = fmt.Sprintf("NOT WITNESSED: %d of the %d required witnesses; ", len(who), k) + s
	}
	return s, ok
}
