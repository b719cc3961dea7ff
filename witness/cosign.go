// Package witness is the C2SP tlog-witness protocol (c2sp.org/tlog-witness)
// on both sides: a witness that cosigns the portal's checkpoints after
// checking each is consistent with the last one it cosigned (Witness, served
// by `portal witness serve`), and the portal's client that submits them
// (Submit) and checks what comes back (CheckCosignature).
//
// No cryptography is written here: signed notes and their Ed25519 signatures
// are golang.org/x/mod/sumdb/note's, consistency proofs are checked with
// golang.org/x/mod/sumdb/tlog.CheckTree, and cosignatures (c2sp.org/tlog-cosignature,
// "cosignature/v1") are made and checked by filippo.io/torchwood's
// CosignatureSigner and CosignatureVerifier. What is ours is the witness's
// state and the HTTP handler and client around them (torchwood's own
// witness package is internal, and its litewitness needs an ssh-agent).
package witness

import (
	"crypto"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"filippo.io/torchwood"
	"golang.org/x/mod/sumdb/note"
)

// cosignatureAlg is the signature type of a cosignature/v1 verifier key
// (c2sp.org/signed-note: 0x04, Ed25519 over the timestamped checkpoint).
const cosignatureAlg = 0x04

// publicOnly is a crypto.Signer that holds only a public key: torchwood
// builds its CosignatureVerifier from a signer's public key, and offers no
// other way to build one from a witness's published verifier key.
type publicOnly ed25519.PublicKey

func (p publicOnly) Public() crypto.PublicKey { return ed25519.PublicKey(p) }
func (p publicOnly) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, errors.New("a witness's verifier key cannot sign")
}

// ParseVerifierKey reads a witness's cosignature verifier key,
// "<name>+<hash>+<base64(0x04 || Ed25519 public key)>" (c2sp.org/tlog-cosignature),
// as `portal witness serve` prints it.
func ParseVerifierKey(vkey string) (*torchwood.CosignatureVerifier, error) {
	vkey = strings.TrimSpace(vkey)
	name, rest, ok1 := strings.Cut(vkey, "+")
	_, key64, ok2 := strings.Cut(rest, "+")
	raw, err := base64.StdEncoding.DecodeString(key64)
	if !ok1 || !ok2 || err != nil || len(raw) != 1+ed25519.PublicKeySize {
		return nil, errors.New("not a witness key: want <name>+<hash>+<key>")
	}
	if raw[0] != cosignatureAlg {
		return nil, errors.New("not a witness key: a cosignature/v1 key's type is 0x04 (this looks like a log's key)")
	}
	s, err := torchwood.NewCosignatureSigner(name, publicOnly(raw[1:]))
	if err != nil {
		return nil, fmt.Errorf("not a witness key: %w", err)
	}
	v := s.Verifier()
	if v.String() != vkey {
		return nil, errors.New("not a witness key: its hash does not match its name and key")
	}
	return v, nil
}

// CheckCosignature checks that sigLine ("— <name> <base64>") is the
// witness's cosignature of the checkpoint signed, a signed note as the log
// signed it, and returns when the witness says it signed. sigLine may also be
// the signature lines a witness answers add-checkpoint with: the one of
// the witness's key is checked.
func CheckCosignature(v *torchwood.CosignatureVerifier, signed, sigLine string) (time.Time, error) {
	text, _, ok := strings.Cut(signed, "\n\n")
	if !ok {
		return time.Time{}, errors.New("the checkpoint is not a signed note")
	}
	msg := text + "\n\n" + strings.TrimSuffix(sigLine, "\n") + "\n"
	n, err := note.Open([]byte(msg), note.VerifierList(v))
	if err != nil {
		return time.Time{}, fmt.Errorf("no valid cosignature of %s: %w", v.Name(), err)
	}
	ts, err := torchwood.CosignatureTimestamp(n.Sigs[0])
	if err != nil {
		return time.Time{}, err
	}
	return time.Unix(ts, 0).UTC(), nil
}

// Line returns the signature line of sigs (a witness's answer) made by
// the key v, "— <name> <base64>" without its newline ("" when none).
func Line(v note.Verifier, sigs string) string {
	for _, l := range strings.Split(sigs, "\n") {
		if strings.HasPrefix(l, "— "+v.Name()+" ") {
			return l
		}
	}
	return ""
}
