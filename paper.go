package doorledger

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// A paper form is the signed permission form an installer arrives with (or a
// signer mails to the manager): photos of it or a PDF scan, who it says
// signed it and the date written on it. It is evidence and the start of a
// verification, never a substitute for one: each roster signer it names is
// asked "Did you sign this form?" on their own signing page, and either
// confirms it and signs electronically, or answers "I did not sign this
// form", which ends the request (or the consent) and alerts the managers and
// the board.

// PaperKind is what a paper form was uploaded as.
type PaperKind string

const (
	PaperPDF    PaperKind = "pdf"
	PaperPhotos PaperKind = "photos"
)

// Paper form limits.
const (
	MaxPaperPDFSize = 20 << 20 // bytes of a PDF scan (pdfcheck.MaxSize)
	MaxPaperPhotos  = 4        // photos of one form
)

// PaperAnswer is a named signer's answer to "Did you sign this form?".
type PaperAnswer string

const (
	PaperUnanswered PaperAnswer = ""
	PaperConfirmed  PaperAnswer = "confirmed" // "I signed it", given with their electronic signature
	PaperDisputed   PaperAnswer = "disputed"  // "I did not sign this form"
)

// PaperFile is one file of a paper form: the PDF, or one photo.
type PaperFile struct {
	ID          int64
	ContentType string // application/pdf, image/jpeg, image/png
	Data        []byte // loaded only when the file itself is asked for
	Size        int64
	SHA256      string
	Pages       int // of a PDF; 1 for a photo
	// PDF facts from pdfcheck: first page size, producer, creation date
	// and active content found (stored, never acted on).
	PageSize string
	Producer string
	Created  string
	Warnings []string
}

// PDF reports whether the file is a PDF.
func (f *PaperFile) PDF() bool { return f.ContentType == "application/pdf" }

// PaperSigner is a roster signer the form is said to be signed by, with
// their answer.
type PaperSigner struct {
	Signer     Signer
	Answer     PaperAnswer
	AnsweredAt time.Time
	Note       string // the reason given with a dispute
}

// PaperForm is a consent request's paper form.
type PaperForm struct {
	ID          int64
	ConsentID   int64
	Kind        PaperKind
	Files       []PaperFile
	SignedBy    []PaperSigner // who it is said to be signed by, in the order named
	DateWritten string        // YYYY-MM-DD, as written on the form
	AttachedBy  string        // the user who attached it
	AttachedAs  Role          // installer, or a manager on a signer's behalf
	AttachedAt  time.Time
	DisputedAt  time.Time // when a named signer said they did not sign it
}

// SHA256 is the form's digest, which a confirmation records: the file's
// SHA-256 for one file, else the SHA-256 of the files' hex digests, one a
// line, in order.
func (p *PaperForm) SHA256() string {
	if len(p.Files) == 1 {
		return p.Files[0].SHA256
	}
	h := sha256.New()
	for _, f := range p.Files {
		fmt.Fprintf(h, "%s\n", f.SHA256)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Pages is the form's page count: a PDF's pages, or one per photo.
func (p *PaperForm) Pages() int {
	n := 0
	for _, f := range p.Files {
		n += f.Pages
	}
	return n
}

// Disputed reports whether a named signer said they did not sign it.
func (p *PaperForm) Disputed() bool { return !p.DisputedAt.IsZero() }

// Asks returns the named signer entry of the roster signer, or nil when the
// form does not name them.
func (p *PaperForm) Asks(signerID int64) *PaperSigner {
	for i := range p.SignedBy {
		if p.SignedBy[i].Signer.ID == signerID {
			return &p.SignedBy[i]
		}
	}
	return nil
}

// SignedByWords names who the form is said to be signed by.
func (p *PaperForm) SignedByWords() string {
	var names []string
	for _, s := range p.SignedBy {
		names = append(names, s.Signer.Name+" ("+s.Signer.Title+")")
	}
	return JoinAnd(names)
}

// Describe says what the form is in one line: "PDF, 2 pages, SHA-256 …".
func (p *PaperForm) Describe() string {
	what := fmt.Sprintf("%d %s", len(p.Files), plural(len(p.Files), "photo", "photos"))
	if p.Kind == PaperPDF {
		what = fmt.Sprintf("PDF, %d %s", p.Pages(), plural(p.Pages(), "page", "pages"))
	}
	return fmt.Sprintf("%s, dated %s on the form, SHA-256 %s", what, p.DateWritten, p.SHA256())
}

// AnswerWords says a named signer's answer, e.g. "confirmed by the signer on
// 2026-12-01 10:00 UTC".
func (s *PaperSigner) AnswerWords(loc *time.Location) string {
	switch s.Answer {
	case PaperConfirmed:
		return "confirmed by the signer on " + s.AnsweredAt.In(loc).Format("2006-01-02 15:04 MST")
	case PaperDisputed:
		return "disputed by the signer on " + s.AnsweredAt.In(loc).Format("2006-01-02 15:04 MST")
	}
	return "not answered yet"
}

// Masked returns a copy of the form with the signers' addresses masked,
// for installers and for the holders of a signing link.
func (p *PaperForm) Masked() *PaperForm {
	if p == nil {
		return nil
	}
	out := *p
	out.SignedBy = make([]PaperSigner, len(p.SignedBy))
	for i, s := range p.SignedBy {
		s.Signer.Email = MaskedAddress
		out.SignedBy[i] = s
	}
	return &out
}

// PaperFormInput is a paper form as uploaded: its files validated by the
// caller (a PDF by pdfcheck, photos re-encoded by imagecheck).
type PaperFormInput struct {
	Kind        PaperKind
	Files       []PaperFile
	SignedByIDs []int64 // roster signers the form is said to be signed by
	DateWritten string  // YYYY-MM-DD
}

// Validate checks the input's own fields (the signers are checked against
// the request and the policy by the service).
func (in *PaperFormInput) Validate(v Validation, now time.Time) {
	in.DateWritten = strings.TrimSpace(in.DateWritten)
	switch in.Kind {
	case PaperPDF:
		if len(in.Files) != 1 {
			v.Add("paper_pdf", "Attach one PDF of the form.")
		}
	case PaperPhotos:
		if len(in.Files) == 0 || len(in.Files) > MaxPaperPhotos {
			v.Add("paper_photos", fmt.Sprintf("Attach 1 to %d photos of the form.", MaxPaperPhotos))
		}
	default:
		v.Add("paper_pdf", "Attach the form as one PDF, or as photos.")
	}
	if len(in.SignedByIDs) == 0 {
		v.Add("paper_signed_by", "Tick who signed the paper form.")
	}
	d, err := time.Parse("2006-01-02", in.DateWritten)
	switch {
	case in.DateWritten == "":
		v.Add("paper_date", "Enter the date written on the form.")
	case err != nil:
		v.Add("paper_date", "Write the date as YYYY-MM-DD.")
	case d.After(now.Add(48 * time.Hour)):
		v.Add("paper_date", "The date written on the form is in the future.")
	}
}

// PaperDisputes counts the paper forms of one installer and vendor in a
// building, and how many of them their signers disputed.
type PaperDisputes struct {
	InstallerID int64
	Installer   string
	Company     string
	Vendor      string
	Forms       int
	Disputed    int
}

// PaperService records paper forms and their answers. The installer's form
// arrives with the request (ConsentRequest.Paper) and a named signer confirms
// it by signing (SignInput.ConfirmPaper).
type PaperService interface {
	// AttachPaperForm attaches a paper form to a request awaiting signatures
	// on a signer's behalf (the building's managers): the signers it names
	// must be named by the request and not have signed yet; each is mailed
	// to confirm it. ECONFLICT when the request has one already or no longer
	// awaits signatures.
	AttachPaperForm(ctx context.Context, consentID int64, in PaperFormInput) (*PaperForm, error)
	// PaperFile returns a file of a consent's paper form, data included, to
	// whoever may see the consent.
	PaperFile(ctx context.Context, consentID, fileID int64) (*PaperFile, error)
	// SigningPaperFile returns a file of the paper form of the consent a
	// signing link is for (any link mailed for it: the signer may look at
	// it again after answering).
	SigningPaperFile(ctx context.Context, token string, fileID int64) (*PaperFile, error)
	// DisputePaperForm answers "I did not sign this form" by a named
	// signer's signing link: the request is refused (or the consent, if it
	// was signed meanwhile, disputed and its device disabled at once), the
	// form is marked disputed, and the managers and the board are alerted.
	// ECONFLICT when the form does not name this signer or they answered.
	DisputePaperForm(ctx context.Context, token, reason string) (*Consent, error)
	// PaperDisputes counts a building's paper forms per installer and
	// vendor, with the disputed ones (its readers).
	PaperDisputes(ctx context.Context, buildingID int64) ([]PaperDisputes, error)
}

// Claimed checks a paper form's input against the request it goes on
// (fields in v): the signers it names are named by the request (named) and
// have not signed (signed), and, when policy is given (an installer's form),
// they are enough people with the roles the policy requires. It returns them.
func (in *PaperFormInput) Claimed(v Validation, now time.Time, named []*Signer, signed map[int64]bool, policy *ConsentPolicy) []*Signer {
	in.Validate(v, now)
	var claimed []*Signer
	seen := map[int64]bool{}
	for _, id := range in.SignedByIDs {
		var found *Signer
		for _, sg := range named {
			if sg.ID == id {
				found = sg
			}
		}
		switch {
		case seen[id]:
			continue
		case found == nil:
			v.Add("paper_signed_by", "Tick only signers who are asked to sign this request: tick them above too.")
			return nil
		case signed[id]:
			v.Add("paper_signed_by", found.Name+" has signed this request already.")
			return nil
		}
		seen[id] = true
		claimed = append(claimed, found)
	}
	if policy != nil && len(claimed) > 0 {
		if err := CheckNamedSigners(policy, claimed); err != nil {
			v.Add("paper_signed_by", "The paper form must be signed as this building's policy requires: "+ErrorFields(err)["signer_id"])
		}
	}
	return claimed
}

// PaperToConfirm is the entry of c's paper form that asks the signer of me,
// when one does and they have not answered.
func (c *Consent) PaperToConfirm(me *RequestSigner) *PaperSigner {
	if c.Paper == nil || me == nil {
		return nil
	}
	if ps := c.Paper.Asks(me.Signer.ID); ps != nil && ps.Answer == PaperUnanswered {
		return ps
	}
	return nil
}

// CheckPaperConfirm requires a signer the paper form names to confirm it
// with their signature: the box ticked (field paper_confirm in v), and the
// form the page showed (ECONFLICT otherwise).
func (c *Consent) CheckPaperConfirm(me *RequestSigner, in SignInput, v Validation) error {
	if c.PaperToConfirm(me) == nil {
		return nil
	}
	if !in.ConfirmPaper {
		v.Add("paper_confirm", "Tick this to confirm that you signed the paper form, or answer “I did not sign this form” below it.")
		return nil
	}
	if subtle.ConstantTimeCompare([]byte(in.PaperSHA256), []byte(c.Paper.SHA256())) != 1 {
		return Errorf(ECONFLICT, "The paper form changed since the page was opened. Please look at it again before signing.")
	}
	return nil
}
