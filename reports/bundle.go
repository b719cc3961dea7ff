package reports

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/auditlog"
)

// Prover is what the evidence bundle needs of the verifiable log to prove
// that each audit entry is in the tree of the report's signed head.
// doorledger.LogService has both methods (EntryIndex wants an admin or the
// system).
type Prover interface {
	// EntryIndex returns the position of a row in the log; ENOTFOUND when
	// it is not (yet) in the log.
	EntryIndex(ctx context.Context, kind string, refID int64) (int64, error)
	// ProveInclusion proves that entry index is in the tree of size entries.
	ProveInclusion(ctx context.Context, index, size int64) (*doorledger.LogInclusionProof, error)
}

// Names of the files of an evidence bundle.
const (
	bundleReadme   = "README.txt"
	bundleReport   = "report.pdf"
	bundleEvents   = "events.csv"
	bundleCommands = "commands.csv"
	bundleAudit    = "audit.jsonl"
	bundleHead     = "log-head.txt"
	bundleKey      = "verifier-key.txt"
	bundleVerify   = "verify.go"
)

// The JSON formats of the bundle, named in each consent file and each line
// of audit.jsonl so that a later layout can be told apart.
const (
	consentFormat = "doorledger-consent-evidence/1"
	auditFormat   = "doorledger-audit-proof/1"
)

// verifyProgram is the program that checks a bundle, shipped in it as
// verify.go (it is built and vetted with the module as ./reports/bundleverify).
//
//go:embed bundleverify/verify.go
var verifyProgram []byte

// EvidenceBundle writes the evidence bundle of the audit report r to w: a zip
// for a dispute, an insurer or the police, which holds everything the report
// rests on and verifies without the portal:
//
//	README.txt                  what each file is, how to verify it, and the SHA-256 of every other file
//	report.pdf                  the audit report, printed by AuditReportPDF (the same bytes as a PDF of r)
//	events.csv                  the unlock events of the range (AuditReportCSV)
//	commands.csv                the enable/disable commands requested in the range
//	consents/<id>.json          each consent's evidence: device, installer, signer and roster title, status,
//	                            verification method, signing time, IP address, user agent, terms hash
//	consents/<id>-signature.png the signature as drawn, byte for byte as stored
//	consents/<id>-terms.txt     the exact terms signed (their SHA-256 is the consent's terms hash)
//	audit.jsonl                 the building's journal of the range, one entry a line, each with its
//	                            canonical log encoding, its position in the log and an inclusion proof
//	                            against the signed head ("proof": null and a reason when there is none)
//	log-head.txt                the signed head of the verifiable log the report covers (a signed note)
//	verifier-key.txt            the portal's key that verifies it
//	verify.go                   a program that checks all of the above
//
// The zip is deterministic: names in byte order, every modification time
// r.GeneratedAt, so the same data give the same bytes. Unlock events are
// streamed (twice: once to hash events.csv for the README's manifest, which
// comes first, then into the zip; a change between the two is an error);
// the PDF is held in memory while the zip is written, as fpdf holds it while
// printing anyway. Proofs are read from log (an admin's or the system's
// context). EINVALID for a bad range or too many events, as the PDF.
func EvidenceBundle(ctx context.Context, w io.Writer, r *doorledger.AuditReport, log Prover) error {
	if r == nil || r.Building == nil {
		return fmt.Errorf("evidence bundle: report and building are required")
	}
	if log == nil {
		return fmt.Errorf("evidence bundle: a log to prove the audit entries is required")
	}
	if _, _, err := r.Range(); err != nil {
		return err
	}
	b := &bundle{r: r, files: map[string][]byte{}, sums: map[string]string{}}
	if err := b.head(); err != nil {
		return err
	}

	// The small files first, in memory: they are bounded by the building's
	// devices and journal, not by its unlock events.
	if err := b.consents(); err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := commandsCSV(&buf, r); err != nil {
		return fmt.Errorf("evidence bundle %s: commands: %w", r.ID, err)
	}
	b.add(bundleCommands, buf.Bytes())
	if err := b.audit(ctx, log); err != nil {
		return err
	}
	b.add(bundleVerify, verifyProgram)

	var pdf bytes.Buffer
	if err := AuditReportPDF(&pdf, r); err != nil {
		return err
	}
	b.add(bundleReport, pdf.Bytes())

	// events.csv is hashed now, for the manifest, and written later.
	eventsHash := sha256.New()
	counted := *r
	if r.Events != nil {
		counted.Events = func(yield func(*doorledger.UnlockEvent) error) error {
			return r.Events(func(ev *doorledger.UnlockEvent) error {
				if ev != nil {
					b.events++
				}
				return yield(ev)
			})
		}
	}
	if err := AuditReportCSV(eventsHash, &counted); err != nil {
		return fmt.Errorf("evidence bundle %s: %w", r.ID, err)
	}
	b.sums[bundleEvents] = hex.EncodeToString(eventsHash.Sum(nil))

	readme, err := b.readme()
	if err != nil {
		return err
	}
	b.add(bundleReadme, readme)

	names := make([]string, 0, len(b.sums))
	for name := range b.sums {
		names = append(names, name)
	}
	slices.Sort(names)
	zw := zip.NewWriter(w)
	for _, name := range names {
		h := &zip.FileHeader{Name: name, Method: zip.Deflate, Modified: r.GeneratedAt.UTC()}
		if strings.HasSuffix(name, ".png") || name == bundleReport {
			// Compressed already: deflating a 4 MB PDF again takes half a
			// second to save a tenth of it.
			h.Method = zip.Store
		}
		h.SetMode(0o644)
		f, err := zw.CreateHeader(h)
		if err != nil {
			return fmt.Errorf("evidence bundle %s: %s: %w", r.ID, name, err)
		}
		if name != bundleEvents {
			if _, err := f.Write(b.files[name]); err != nil {
				return fmt.Errorf("evidence bundle %s: %s: %w", r.ID, name, err)
			}
			continue
		}
		again := sha256.New()
		if err := AuditReportCSV(io.MultiWriter(f, again), r); err != nil {
			return fmt.Errorf("evidence bundle %s: %w", r.ID, err)
		}
		if hex.EncodeToString(again.Sum(nil)) != b.sums[bundleEvents] {
			return fmt.Errorf("evidence bundle %s: the events changed while the bundle was written", r.ID)
		}
	}
	return zw.Close()
}

// bundle is an evidence bundle being put together.
type bundle struct {
	r      *doorledger.AuditReport
	files  map[string][]byte // the files held in memory (all but events.csv), by name
	sums   map[string]string // the SHA-256 (hex) of every file, by name
	events int64             // unlock events in events.csv

	headSize int64
	headRoot doorledger.LogHash

	consentIDs []int64
	proved     int // audit entries with a proof
	unproved   int
}

func (b *bundle) add(name string, data []byte) {
	sum := sha256.Sum256(data)
	b.files[name], b.sums[name] = data, hex.EncodeToString(sum[:])
}

// head adds the signed head and its key, after checking that the note is
// signed by the key and signs the head's size and root: a bundle never
// carries a head that does not verify.
func (b *bundle) head() error {
	r := b.r
	key := strings.TrimSpace(r.VerifierKey)
	if key != "" {
		b.add(bundleKey, []byte(key+"\n"))
	}
	if r.LogHead == nil {
		return nil
	}
	if key == "" {
		return fmt.Errorf("evidence bundle %s: a log head without the key that verifies it", r.ID)
	}
	v, err := auditlog.NewVerifier(key)
	if err != nil {
		return fmt.Errorf("evidence bundle %s: %w", r.ID, err)
	}
	cp, err := auditlog.OpenHead(r.LogHead.Note, v)
	size, root := cp.Size, cp.Root
	if err != nil {
		return fmt.Errorf("evidence bundle %s: the log head does not verify: %w", r.ID, err)
	}
	if size != r.LogHead.Size || root != r.LogHead.Root {
		return fmt.Errorf("evidence bundle %s: the log head's note signs size %d root %s, not size %d root %s",
			r.ID, size, root, r.LogHead.Size, r.LogHead.Root)
	}
	b.headSize, b.headRoot = size, root
	b.add(bundleHead, []byte(r.LogHead.Note))
	return nil
}

type consentJSON struct {
	Format       string         `json:"format"`
	ID           int64          `json:"id"`
	BuildingID   int64          `json:"building_id"`
	Building     string         `json:"building"`
	DeviceID     int64          `json:"device_id"`
	Device       deviceJSON     `json:"device"`
	InstallerID  int64          `json:"installer_id"`
	Installer    string         `json:"installer"`
	Company      string         `json:"company"`
	Signer       signerJSON     `json:"signer"`
	Status       string         `json:"status"`
	InPerson     bool           `json:"in_person"`
	RequestedAt  string         `json:"requested_at"`
	ExpiresAt    string         `json:"expires_at"`
	RenewalOf    int64          `json:"renewal_of"`
	StatusAt     string         `json:"status_at"`
	StatusNote   string         `json:"status_note"`
	Signature    *signatureJSON `json:"signature"`
	Verification *verifyingJSON `json:"checks"`
}

type deviceJSON struct {
	Vendor   string `json:"vendor"`
	Model    string `json:"model"`
	Serial   string `json:"serial"`
	Location string `json:"location"`
	Opens    string `json:"opens"`
}

type signerJSON struct {
	ID    int64  `json:"id"`
	Name  string `json:"name"`
	Title string `json:"roster_title"`
	Email string `json:"email"`
}

type signatureJSON struct {
	TypedName       string `json:"typed_name"`
	SignedAt        string `json:"signed_at"`
	Timezone        string `json:"timezone"`
	IP              string `json:"ip"`
	UserAgent       string `json:"user_agent"`
	Method          string `json:"verification_method"`
	SignerID        int64  `json:"signer_id"`
	TermsSHA256     string `json:"terms_sha256"`
	TermsFile       string `json:"terms_file"`
	SignatureFile   string `json:"signature_png_file"`
	SignatureSHA256 string `json:"signature_png_sha256"`
	SignatureBytes  int    `json:"signature_png_bytes"`
}

type verifyingJSON struct {
	// TermsMatch is whether the stored terms hash to the stored terms hash.
	TermsMatch bool `json:"terms_file_hashes_to_terms_sha256"`
}

// consents adds each consent's evidence, signature image and terms.
func (b *bundle) consents() error {
	r := b.r
	seen := map[int64]bool{}
	for _, c := range r.Consents {
		if c == nil {
			continue
		}
		if seen[c.ID] {
			return fmt.Errorf("evidence bundle %s: consent %d is listed twice", r.ID, c.ID)
		}
		seen[c.ID] = true
		b.consentIDs = append(b.consentIDs, c.ID)
		base := "consents/" + strconv.FormatInt(c.ID, 10)
		j := consentJSON{
			Format: consentFormat, ID: c.ID, BuildingID: c.BuildingID, Building: r.Building.Name,
			DeviceID: c.DeviceID, Device: deviceJSON{c.Device.Vendor, c.Device.Model, c.Device.Serial, c.Device.Location, c.Device.Opens},
			InstallerID: c.InstallerID, Installer: c.Installer, Company: c.Company,
			Signer: signerJSON{c.Signer.ID, c.Signer.Name, c.Signer.Title, c.Signer.Email},
			Status: string(c.Status), InPerson: c.InPerson,
			RequestedAt: jsonTime(c.RequestedAt), ExpiresAt: jsonTime(c.ExpiresAt), RenewalOf: c.RenewalOf,
			StatusAt: jsonTime(c.StatusAt), StatusNote: c.StatusNote,
		}
		if j.Signer.ID == 0 {
			j.Signer.ID = c.SignerID
		}
		if s := c.Signature; s != nil {
			j.Signature = &signatureJSON{
				TypedName: s.TypedName, SignedAt: jsonTime(s.SignedAt), Timezone: s.Timezone, IP: s.IP, UserAgent: s.UserAgent,
				Method: string(s.Method), SignerID: s.SignerID, TermsSHA256: s.TermsSHA256, TermsFile: base + "-terms.txt",
			}
			b.add(j.Signature.TermsFile, []byte(s.Terms))
			j.Verification = &verifyingJSON{TermsMatch: strings.EqualFold(doorledger.TermsSHA256(s.Terms), strings.TrimSpace(s.TermsSHA256))}
			if len(s.SignaturePNG) > 0 {
				j.Signature.SignatureFile = base + "-signature.png"
				b.add(j.Signature.SignatureFile, s.SignaturePNG)
				j.Signature.SignatureSHA256 = b.sums[j.Signature.SignatureFile]
				j.Signature.SignatureBytes = len(s.SignaturePNG)
			}
		}
		data, err := marshalJSON(j, true)
		if err != nil {
			return fmt.Errorf("evidence bundle %s: consent %d: %w", r.ID, c.ID, err)
		}
		b.add(base+".json", data)
	}
	return nil
}

type auditLine struct {
	Format   string     `json:"format"`
	Kind     string     `json:"kind"`
	ID       int64      `json:"id"`
	Entry    auditJSON  `json:"entry"`
	Encoding string     `json:"encoding"`  // base64 of the canonical encoding (auditlog)
	LeafHash string     `json:"leaf_hash"` // hex SHA-256(0x00 || encoding)
	Index    *int64     `json:"index"`     // its position in the log; null when not in it
	Proof    *proofJSON `json:"proof"`     // null when there is none; Reason says why
	Reason   string     `json:"reason,omitempty"`
}

type auditJSON struct {
	ID         int64  `json:"id"`
	At         string `json:"at"`
	ActorID    int64  `json:"actor_id"`
	Actor      string `json:"actor"`
	Action     string `json:"action"`
	BuildingID int64  `json:"building_id"`
	ObjectType string `json:"object_type"`
	ObjectID   int64  `json:"object_id"`
	IP         string `json:"ip"`
	Detail     string `json:"detail"`
}

type proofJSON struct {
	TreeSize int64    `json:"tree_size"`
	Root     string   `json:"root"`
	Hashes   []string `json:"hashes"`
}

// audit adds audit.jsonl: every journal entry of the report, with a proof
// that the log holds it, in the tree of the report's head, exactly as it is
// now.
func (b *bundle) audit(ctx context.Context, log Prover) error {
	r := b.r
	var buf bytes.Buffer
	for _, e := range r.AuditEntries {
		if e == nil {
			continue
		}
		line := auditLine{Format: auditFormat, Kind: doorledger.LogKindAudit, ID: e.ID, Entry: auditJSON{
			ID: e.ID, At: logTime(e.At), ActorID: e.ActorID, Actor: e.Actor, Action: e.Action, BuildingID: e.BuildingID,
			ObjectType: e.ObjectType, ObjectID: e.ObjectID, IP: e.IP, Detail: e.Detail,
		}}
		if err := b.prove(ctx, log, e, &line); err != nil {
			return fmt.Errorf("evidence bundle %s: audit entry %d: %w", r.ID, e.ID, err)
		}
		if line.Proof != nil {
			b.proved++
		} else {
			b.unproved++
		}
		data, err := marshalJSON(line, false)
		if err != nil {
			return fmt.Errorf("evidence bundle %s: audit entry %d: %w", r.ID, e.ID, err)
		}
		buf.Write(data)
	}
	b.add(bundleAudit, buf.Bytes())
	return nil
}

// prove fills line's encoding, index and proof, or the reason there is no
// proof. Only a failure to read the log is an error.
func (b *bundle) prove(ctx context.Context, log Prover, e *doorledger.AuditEntry, line *auditLine) error {
	enc, err := auditlog.EncodeAudit(e)
	if err != nil {
		line.Reason = "the entry cannot be encoded for the log: " + err.Error()
		return nil
	}
	leaf := auditlog.LeafHash(enc)
	line.Encoding, line.LeafHash = base64.StdEncoding.EncodeToString(enc), leaf.String()
	if b.r.LogHead == nil {
		line.Reason = "the report has no signed head of the log to prove it against"
		return nil
	}
	idx, err := log.EntryIndex(ctx, doorledger.LogKindAudit, e.ID)
	if doorledger.ErrorCode(err) == doorledger.ENOTFOUND {
		line.Reason = "not yet in the log: entries are appended about a second after they are recorded"
		return nil
	} else if err != nil {
		return err
	}
	line.Index = &idx
	if idx >= b.headSize {
		line.Reason = fmt.Sprintf("appended to the log at index %d, after the report's signed head (%d entries)", idx, b.headSize)
		return nil
	}
	p, err := log.ProveInclusion(ctx, idx, b.headSize)
	if err != nil {
		return err
	}
	if p.LeafHash != leaf {
		line.Reason = fmt.Sprintf("CHANGED after it was logged: the entry now hashes to %s, the log holds %s at index %d", leaf, p.LeafHash, idx)
		return nil
	}
	if err := auditlog.CheckInclusion(p, doorledger.LogHead{Size: b.headSize, Root: b.headRoot}); err != nil {
		line.Reason = "the log's proof does not verify against the signed head: " + err.Error()
		return nil
	}
	pj := &proofJSON{TreeSize: p.Size, Root: b.headRoot.String(), Hashes: make([]string, len(p.Hashes))}
	for i, h := range p.Hashes {
		pj.Hashes[i] = h.String()
	}
	line.Proof = pj
	return nil
}

var readmeTemplate = template.Must(template.New("README").Parse(`Doorledger evidence bundle
==========================

Report      {{.ID}}
Building    {{.Building}} (#{{.BuildingID}})
Address     {{.Address}}
Range       {{.From}} to {{.To}}, both included, in building time ({{.Zone}})
Generated   {{.GeneratedLocal}} ({{.GeneratedUTC}}) for {{.GeneratedBy}}
Log head    {{.Head}}

This zip holds everything the audit report of this building and range rests
on, so that it can be checked without the portal: the report itself, the
consents with their signatures, the unlock events, the commands sent to the
devices, and the building's journal with a proof for each entry that the
portal's tamper-evident log holds it unchanged.

Files
-----
README.txt
    This file. It ends with the SHA-256 of every other file.
report.pdf
    The board's audit report, as the portal prints it for the same data.
events.csv
    The {{.Events}} unlock events of the range, oldest first: the rows of the
    report's unlock table. Times are building time with their UTC offset.
    unlock_id is the event's id in the log ("unlock #<id>").
commands.csv
    The {{.Commands}} enable/disable commands requested in the range: who asked,
    when, when the device confirmed.
consents/<id>.json
    The evidence of each of the {{.Consents}} consents of the building's devices:
    the device, the installer, the signer as on the building's roster and
    their title, the status, and for a signed consent how the signer was
    verified, when they signed (UTC), from which IP address and browser, and
    the SHA-256 of the terms they signed.
consents/<id>-signature.png
    The signature as the signer drew it, byte for byte as the portal stored it.
consents/<id>-terms.txt
    The exact terms document the signer signed. Its SHA-256 is the consent's
    terms_sha256 (checks.terms_file_hashes_to_terms_sha256 says whether it is).
audit.jsonl
    The building's journal in the range ({{.Entries}} entries: {{.Proved}} with a proof,
    {{.Unproved}} without), one JSON object per line, with the entry, its canonical
    encoding in the log (base64), its leaf hash, its index in the log and an
    inclusion proof against the signed head below ("proof": null and a
    "reason" when there is none: an entry appended after the head, or not
    yet appended, proves nothing yet).
log-head.txt
    The signed head of the portal's verifiable log that the report covers: a
    signed note (golang.org/x/mod/sumdb/note) whose text is the tree's
    "go.sum database tree" line, its size and its root hash (base64).
verifier-key.txt
    The portal's public key (note verifier key) that verifies log-head.txt.
    Every report prints it too.
verify.go
    A Go program that checks all of the above (step 3).

Times in the JSON files are UTC (RFC 3339).

How to verify
-------------
1. The bundle. The portal registered this zip's SHA-256 when it made it.
   Upload the zip on the portal's "Verify a report" page, or compare
   "sha256sum {{.ID}}.zip" with the SHA-256 the report's page shows.

2. The files. The manifest below is in sha256sum format. In the unzipped
   directory:

       sed -n '/^Manifest/,$p' README.txt | grep '  ' | sha256sum -c

3. The log. With Go installed, in the unzipped directory:

       go mod init verify && go get golang.org/x/mod@v0.42.0 && go run verify.go

   verify.go checks the manifest, that log-head.txt is signed by
   verifier-key.txt, and each inclusion proof of audit.jsonl: it decodes the
   entry's encoding, hashes it as a leaf (tlog.RecordHash: SHA-256 of a zero
   byte and the encoding) and checks the proof against the head's root
   (tlog.CheckRecord). It exits non-zero naming the first file or entry that
   does not verify. Check that verifier-key.txt is the key your portal shows
   (admin pages, every report): a bundle signed with another key proves
   nothing.

4. Later reports. A later report's head extends this one when the log only
   appended in between: upload both reports on the "Verify a report" page for
   a consistency proof.

Manifest (SHA-256)
------------------
{{range .Manifest}}{{.}}
{{end}}`))

// readme writes README.txt, with the manifest of every other file.
func (b *bundle) readme() ([]byte, error) {
	r := b.r
	loc := r.Building.Location()
	head := "none: the log was empty when the report was made"
	if r.LogHead != nil {
		head = fmt.Sprintf("%d entries, root %s, signed %s", r.LogHead.Size, r.LogHead.Root, formatUTC(r.LogHead.At))
	}
	names := make([]string, 0, len(b.sums))
	for name := range b.sums {
		names = append(names, name)
	}
	slices.Sort(names)
	manifest := make([]string, len(names))
	for i, name := range names {
		manifest[i] = b.sums[name] + "  " + name
	}
	var buf bytes.Buffer
	err := readmeTemplate.Execute(&buf, map[string]any{
		"ID": r.ID, "Building": oneLine(r.Building.Name), "BuildingID": r.Building.ID, "Address": oneLine(r.Building.Address),
		"From": r.From, "To": r.To, "Zone": loc.String(),
		"GeneratedLocal": r.GeneratedAt.In(loc).Format("2006-01-02 15:04:05 MST"), "GeneratedUTC": formatUTC(r.GeneratedAt),
		"GeneratedBy": oneLine(r.GeneratedBy), "Head": head,
		"Events": number64(b.events), "Commands": len(r.Commands), "Consents": len(b.consentIDs),
		"Entries": b.proved + b.unproved, "Proved": b.proved, "Unproved": b.unproved,
		"Manifest": manifest,
	})
	return buf.Bytes(), err
}

// jsonTime writes t in UTC as RFC 3339 with its fraction of a second, or ""
// for no time.
func jsonTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// logTime writes t as the log's encoding does (UTC, microseconds), so that
// an audit entry's fields re-encode to its encoding; "" for no time.
func logTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(auditlog.TimeLayout)
}

// marshalJSON encodes v without escaping <, > and & (the files are not
// HTML), indented or as one line, ending with a newline.
func marshalJSON(v any, indent bool) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if indent {
		enc.SetIndent("", "  ")
	}
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
