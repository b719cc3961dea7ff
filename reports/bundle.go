package reports

import (
	"archive/zip"
	"bufio"
	"bytes"
	"cmp"
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
// that each unlock event and audit entry is in the tree of the report's
// signed head. doorledger.LogService has both methods.
type Prover interface {
	// LogLeaves returns where rows of kind are in the log, in the order of
	// ids; ids not (yet) in the log are left out.
	LogLeaves(ctx context.Context, kind string, ids []int64) ([]doorledger.LogLeaf, error)
	// ProveInclusions proves the entries at indexes (ascending) are in the
	// tree of size entries, sharing the nodes they have in common.
	ProveInclusions(ctx context.Context, indexes []int64, size int64) (*doorledger.LogMultiProof, error)
}

// Names of the files of an evidence bundle.
const (
	bundleReadme   = "README.txt"
	bundleReport   = "report.pdf"
	bundleEvents   = "events.csv"
	bundleCommands = "commands.csv"
	bundleAudit    = "audit.jsonl"
	bundleProof    = "log-proof.jsonl"
	bundleHead     = "log-head.txt"
	bundleKey      = "verifier-key.txt"
	bundleVerify   = "verify.go"
	bundleRedacted = "redactions.jsonl"

	bundleWitnessed  = "witness-checkpoint.txt" // the latest checkpoint that met the witness policy, cosigned
	bundleWitnessPf  = "witness-proof.txt"      // the consistency proof from it to log-head.txt
	bundleWitnessCfg = "witnesses-configured.txt"
)

// The JSON formats of the bundle, named in each consent file and each line
// of audit.jsonl so that a later layout can be told apart.
const (
	consentFormat = "doorledger-consent-evidence/1"
	auditFormat   = "doorledger-audit-proof/2"
	proofFormat   = "doorledger-log-proof/1"
)

// verifyProgram is the program that checks a bundle, shipped in it as
// verify.go: standard library only, so that `go run verify.go` works
// offline (it is built, vetted and tested against tlog and note with the
// module as ./reports/bundleverify).
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
//	                            canonical log encoding, its leaf hash and its position in the log
//	log-proof.jsonl             the proof that the unlock events of events.csv and the journal entries
//	                            of audit.jsonl are in the tree of the signed head: each event's position
//	                            and leaf hash, then the tree's nodes they need, each stored once
//	log-head.txt                the signed head of the verifiable log the report covers (a C2SP checkpoint)
//	verifier-key.txt            the portal's key that verifies it
//	verify.go                   a program that checks all of the above, standard library only
//
// The zip is deterministic: names in byte order, every modification time
// r.GeneratedAt, so the same data give the same bytes. Unlock events are
// streamed (twice: once to hash events.csv for the README's manifest, which
// comes first, and to find each event's leaf; then into the zip; a change
// between the two is an error); log-proof.jsonl is written twice from what
// the first walk kept (~50 bytes an event, ~48 a node); the PDF is held in
// memory while the zip is written, as fpdf holds it while printing anyway.
// Positions and nodes are read from log (an admin's or the system's
// context). EINVALID for a bad range or too many events, as the PDF.
func EvidenceBundle(ctx context.Context, w io.Writer, r *doorledger.AuditReport, log Prover) error {
	if r == nil || r.Building == nil {
		return fmt.Errorf("evidence bundle: report and building are required")
	}
	if log == nil {
		return fmt.Errorf("evidence bundle: a log to prove the entries is required")
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
	b.add(bundleVerify, verifyProgram)

	// events.csv is hashed now, for the manifest, and written later; the
	// same walk keeps each event's leaf for log-proof.jsonl.
	eventsHash := sha256.New()
	counted := *r
	if r.Events != nil {
		counted.Events = func(yield func(*doorledger.UnlockEvent) error) error {
			return r.Events(func(ev *doorledger.UnlockEvent) error {
				if ev != nil {
					if err := b.keepEvent(ev); err != nil {
						return err
					}
				}
				return yield(ev)
			})
		}
	}
	if err := AuditReportCSV(eventsHash, &counted); err != nil {
		return fmt.Errorf("evidence bundle %s: %w", r.ID, err)
	}
	b.sums[bundleEvents] = hex.EncodeToString(eventsHash.Sum(nil))

	if err := b.audit(); err != nil {
		return err
	}
	if err := b.prove(ctx, log); err != nil {
		return fmt.Errorf("evidence bundle %s: %w", r.ID, err)
	}
	if err := b.auditFile(); err != nil {
		return err
	}
	if err := b.redactionsFile(); err != nil {
		return err
	}
	if b.multi != nil {
		proofHash := sha256.New()
		if err := b.writeProof(proofHash); err != nil {
			return fmt.Errorf("evidence bundle %s: %w", r.ID, err)
		}
		b.sums[bundleProof] = hex.EncodeToString(proofHash.Sum(nil))
	}

	var pdf bytes.Buffer
	if err := AuditReportPDF(&pdf, r); err != nil {
		return err
	}
	b.add(bundleReport, pdf.Bytes())

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
			// Compressed already: deflating the PDF again costs far more
			// time than the little it saves (figures: docs/benchmarks.md).
			h.Method = zip.Store
		}
		h.SetMode(0o644)
		f, err := zw.CreateHeader(h)
		if err != nil {
			return fmt.Errorf("evidence bundle %s: %s: %w", r.ID, name, err)
		}
		again := sha256.New()
		switch name {
		case bundleEvents:
			err = AuditReportCSV(io.MultiWriter(f, again), r)
		case bundleProof:
			err = b.writeProof(io.MultiWriter(f, again))
		default:
			if _, err := f.Write(b.files[name]); err != nil {
				return fmt.Errorf("evidence bundle %s: %s: %w", r.ID, name, err)
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("evidence bundle %s: %s: %w", r.ID, name, err)
		}
		if hex.EncodeToString(again.Sum(nil)) != b.sums[name] {
			return fmt.Errorf("evidence bundle %s: %s changed while the bundle was written", r.ID, name)
		}
	}
	return zw.Close()
}

// bundle is an evidence bundle being put together.
type bundle struct {
	r     *doorledger.AuditReport
	files map[string][]byte // the files held in memory (all but events.csv and log-proof.jsonl), by name
	sums  map[string]string // the SHA-256 (hex) of every file, by name

	headSize int64
	headRoot doorledger.LogHash

	consentIDs []int64

	events   []bundleEvent // the unlock events of events.csv, in its order
	entries  []bundleEntry // the journal entries of audit.jsonl, in its order
	multi    *doorledger.LogMultiProof
	proved   int // journal entries in the proof
	unproved int
	eventsIn int // unlock events in the proof

	// The redactions that emptied events of events.csv (the privacy
	// profile): what each recorded of an event, by event id, and their
	// journal entries for redactions.jsonl.
	redactedBy map[int64]*redactedEvent
	redactions []bundleRedaction
}

// redactedEvent is what a redaction recorded of an event.
type redactedEvent struct {
	by   int64 // the redaction's journal entry
	leaf doorledger.RedactedLeaf
	in   bool // events.csv holds it
}

// bundleRedaction is a line of redactions.jsonl being made.
type bundleRedaction struct {
	entry bundleEntry
	r     *doorledger.UnlockRedaction
}

// bundleEvent is what log-proof.jsonl says of one unlock event.
type bundleEvent struct {
	id     int64
	leaf   doorledger.LogHash // the leaf of the event as events.csv gives it
	index  int64              // its position in the log; -1: not in it
	reason string             // why it is not in the proof ("": it is)
	fields map[string]string  // what events.csv cannot carry exactly (nil: nothing)
	red    *redactedEvent     // the redaction that emptied it (nil: none)
}

// bundleEntry is an audit.jsonl line being made.
type bundleEntry struct {
	line auditLine
	leaf doorledger.LogHash
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
	return b.witnessed()
}

// witnessed adds the latest checkpoint that met the witness policy when
// the report was generated, with its cosignatures, the proof that the
// report's head extends it, and the witnesses configured then. The offline
// verifier checks the cosignatures only against the keys the board gives
// it: a bundle cannot vouch for its own witnesses.
func (b *bundle) witnessed() error {
	w := b.r.Witnessed
	if w == nil || w.Policy.N == 0 {
		return nil
	}
	var cfg bytes.Buffer
	fmt.Fprintf(&cfg, "# The witnesses configured on the portal when this report was generated, for reference only:\n"+
		"# verify with the keys your board got from the witnesses themselves (verify.go -witnesses FILE).\n"+
		"# Policy: %d of %d.\n", w.Policy.K, w.Policy.N)
	for _, k := range w.Configured {
		fmt.Fprintf(&cfg, "# %s: %s\n", oneLine(k.Name), k.VerifierKey)
	}
	b.add(bundleWitnessCfg, cfg.Bytes())
	if w.Head == nil {
		return nil
	}
	b.add(bundleWitnessed, []byte(w.CosignedNote()))
	var pf bytes.Buffer
	fmt.Fprintf(&pf, "old %d\nnew %d\n", w.Head.Size, b.headSize)
	if p := b.r.WitnessProof; p != nil {
		if p.OldSize != w.Head.Size || p.NewSize != b.headSize {
			return fmt.Errorf("evidence bundle %s: the witness proof is from %d to %d, not %d to %d", b.r.ID, p.OldSize, p.NewSize, w.Head.Size, b.headSize)
		}
		for _, h := range p.Hashes {
			pf.WriteString(base64.StdEncoding.EncodeToString(h[:]) + "\n")
		}
	}
	b.add(bundleWitnessPf, pf.Bytes())
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
	Paper        *paperJSON     `json:"paper_form,omitempty"`
}

// paperJSON is a consent's signed paper form: its files (stored
// in the bundle byte for byte), who it is said to be signed by and each
// one's answer.
type paperJSON struct {
	Kind        string            `json:"kind"`
	SHA256      string            `json:"sha256"`
	DateWritten string            `json:"date_written"`
	AttachedBy  string            `json:"attached_by"`
	AttachedAs  string            `json:"attached_as"`
	AttachedAt  string            `json:"attached_at"`
	DisputedAt  string            `json:"disputed_at"`
	Files       []paperFileJSON   `json:"files"`
	SignedBy    []paperSignerJSON `json:"signed_by"`
}

type paperFileJSON struct {
	File        string   `json:"file"`
	ContentType string   `json:"content_type"`
	SHA256      string   `json:"sha256"`
	Bytes       int64    `json:"bytes"`
	Pages       int      `json:"pages"`
	Warnings    []string `json:"warnings,omitempty"`
	// Matches: the file in the bundle hashes to the SHA-256 recorded.
	Matches bool `json:"file_hashes_to_sha256"`
}

type paperSignerJSON struct {
	SignerID   int64  `json:"signer_id"`
	Name       string `json:"name"`
	Title      string `json:"title"`
	Answer     string `json:"answer"`
	AnsweredAt string `json:"answered_at"`
	Note       string `json:"note"`
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
		if form := c.Paper; form != nil {
			pj := &paperJSON{Kind: string(form.Kind), SHA256: form.SHA256(), DateWritten: form.DateWritten, AttachedBy: form.AttachedBy,
				AttachedAs: string(form.AttachedAs), AttachedAt: jsonTime(form.AttachedAt), DisputedAt: jsonTime(form.DisputedAt)}
			for i, f := range form.Files {
				ext := map[string]string{"application/pdf": ".pdf", "image/jpeg": ".jpg", "image/png": ".png"}[f.ContentType]
				name := fmt.Sprintf("%s-paper-%d%s", base, i+1, ext)
				b.add(name, f.Data)
				pj.Files = append(pj.Files, paperFileJSON{File: name, ContentType: f.ContentType, SHA256: f.SHA256, Bytes: int64(len(f.Data)),
					Pages: f.Pages, Warnings: f.Warnings, Matches: strings.EqualFold(b.sums[name], f.SHA256)})
			}
			for _, ps := range form.SignedBy {
				pj.SignedBy = append(pj.SignedBy, paperSignerJSON{SignerID: ps.Signer.ID, Name: ps.Signer.Name, Title: ps.Signer.Title,
					Answer: string(ps.Answer), AnsweredAt: jsonTime(ps.AnsweredAt), Note: ps.Note})
			}
			j.Paper = pj
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
	Format   string    `json:"format"`
	Kind     string    `json:"kind"`
	ID       int64     `json:"id"`
	Entry    auditJSON `json:"entry"`
	Encoding string    `json:"encoding"`  // base64 of the canonical encoding (auditlog)
	LeafHash string    `json:"leaf_hash"` // hex SHA-256(0x00 || encoding)
	Index    *int64    `json:"index"`     // its position in the log; null when not in it
	Proved   bool      `json:"proved"`    // log-proof.jsonl proves it in the signed head's tree
	Reason   string    `json:"reason,omitempty"`
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

// keepEvent keeps what log-proof.jsonl says of an unlock event: its leaf,
// as the verifier recomputes it from events.csv, and the values events.csv
// cannot carry exactly (a known device's reference, and a text a
// spreadsheet-safe cell or CSV's line endings would change).
func (b *bundle) keepEvent(ev *doorledger.UnlockEvent) error {
	if len(b.events) >= doorledger.MaxReportEvents {
		return doorledger.Errorf(doorledger.EINVALID, "The report holds more than %d unlock events.", doorledger.MaxReportEvents)
	}
	e := bundleEvent{id: ev.ID, index: -1}
	if enc, err := auditlog.EncodeUnlock(ev); err != nil {
		e.reason = "the event cannot be encoded for the log: " + err.Error()
	} else {
		e.leaf = auditlog.LeafHash(enc)
	}
	// A redacted event proves through its redaction: what remains hashes to
	// what the redaction recorded, and the leaf it recorded is the log's.
	if x := b.redacted(ev.ID); x != nil && e.reason == "" {
		x.in, e.red = true, x
		if e.leaf != x.leaf.Redacted {
			e.reason = fmt.Sprintf("CHANGED after its redaction (audit #%d): it now hashes to %s, the redaction recorded %s", x.by, e.leaf, x.leaf.Redacted)
		}
		e.leaf = x.leaf.Logged
	}
	raw := func(name, v string) {
		if e.fields == nil {
			e.fields = map[string]string{}
		}
		e.fields[name] = v
	}
	if ev.DeviceID != 0 && ev.DeviceRef != "" || ev.DeviceID == 0 && !csvExact(ev.DeviceRef) {
		raw("device_ref", ev.DeviceRef)
	}
	for _, f := range [...]struct{ name, v string }{{"event_id", ev.EventID}, {"method", ev.Method}, {"actor_ref", ev.ActorRef},
		{"result", string(ev.Result)}, {"source", ev.Source}} {
		if !csvExact(f.v) || unsafeCell(safeCell(f.v)) != f.v {
			raw(f.name, f.v)
		}
	}
	if labels := flagLabels(map[string]string{}, ev.Anomalies); !slices.Equal(anomalyKinds(labels), ev.Anomalies) {
		raw("anomalies", strings.Join(ev.Anomalies, ","))
	}
	b.events = append(b.events, e)
	return nil
}

// csvExact reports whether encoding/csv reads v back as written (it reads
// a line ending "\r\n" within a quoted field as "\n").
func csvExact(v string) bool { return !strings.ContainsRune(v, '\r') }

// unsafeCell is what the verifier reads from a spreadsheet-safe cell: the
// cell without the ' that safeCell put before = + - @, a tab or a carriage
// return.
func unsafeCell(c string) string {
	if len(c) >= 2 && c[0] == '\'' && strings.IndexByte("=+-@\t\r", c[1]) >= 0 {
		return c[1:]
	}
	return c
}

// anomalyKinds reads events.csv's anomaly labels back as kinds: each label
// is its kind with spaces for underscores (kinds are words of [a-z0-9_]).
func anomalyKinds(labels string) []string {
	if labels == "" {
		return nil
	}
	var kinds []string
	for _, l := range strings.Split(labels, ", ") {
		kinds = append(kinds, strings.ReplaceAll(l, " ", "_"))
	}
	return kinds
}

// audit encodes every journal entry of the report for audit.jsonl.
func (b *bundle) audit() error {
	for _, e := range b.r.AuditEntries {
		if e == nil {
			continue
		}
		be := bundleEntry{line: auditLine{Format: auditFormat, Kind: doorledger.LogKindAudit, ID: e.ID, Entry: auditJSON{
			ID: e.ID, At: logTime(e.At), ActorID: e.ActorID, Actor: e.Actor, Action: e.Action, BuildingID: e.BuildingID,
			ObjectType: e.ObjectType, ObjectID: e.ObjectID, IP: e.IP, Detail: e.Detail,
		}}}
		enc, err := auditlog.EncodeAudit(e)
		if err != nil {
			be.line.Reason = "the entry cannot be encoded for the log: " + err.Error()
		} else {
			be.leaf = auditlog.LeafHash(enc)
			be.line.Encoding, be.line.LeafHash = base64.StdEncoding.EncodeToString(enc), be.leaf.String()
		}
		b.entries = append(b.entries, be)
	}
	return nil
}

// prove finds where each event and entry is in the log, and proves at once
// those in the tree of the report's head, unchanged since they were logged;
// the others get the reason they have no proof. It checks the proof against
// the head: a bundle never carries a proof that does not verify.
func (b *bundle) prove(ctx context.Context, log Prover) error {
	noHead := "the report has no signed head of the log to prove it against"
	// why says why an entry logged at index with hash logged has no proof,
	// or "" when it is proved.
	why := func(leaf doorledger.LogHash, l doorledger.LogLeaf, found bool) string {
		switch {
		case !found:
			return "not yet in the log: entries are appended about a second after they are recorded"
		case l.Index >= b.headSize:
			return fmt.Sprintf("appended to the log at index %d, after the report's signed head (%d entries)", l.Index, b.headSize)
		case l.Hash != leaf:
			return fmt.Sprintf("CHANGED after it was logged: it now hashes to %s, the log holds %s at index %d", leaf, l.Hash, l.Index)
		}
		return ""
	}
	type proved struct {
		index int64
		leaf  doorledger.LogHash
	}
	var in []proved

	ids := make([]int64, 0, len(b.entries))
	for _, e := range b.entries {
		ids = append(ids, e.line.ID)
	}
	leaves, err := leavesByID(ctx, log, doorledger.LogKindAudit, ids)
	if err != nil {
		return err
	}
	for i := range b.entries {
		e := &b.entries[i]
		if e.line.Reason != "" {
			continue
		}
		if b.r.LogHead == nil {
			e.line.Reason = noHead
			continue
		}
		l, found := leaves[e.line.ID]
		if found {
			e.line.Index = &l.Index
		}
		if e.line.Reason = why(e.leaf, l, found); e.line.Reason == "" {
			e.line.Proved = true
			in = append(in, proved{l.Index, e.leaf})
		}
	}

	ids = make([]int64, 0, len(b.events))
	for _, e := range b.events {
		ids = append(ids, e.id)
	}
	if leaves, err = leavesByID(ctx, log, doorledger.LogKindUnlock, ids); err != nil {
		return err
	}
	for i := range b.events {
		e := &b.events[i]
		if e.reason != "" {
			continue
		}
		if b.r.LogHead == nil {
			e.reason = noHead
			continue
		}
		l, found := leaves[e.id]
		if found {
			e.index = l.Index
		}
		if e.reason = why(e.leaf, l, found); e.reason == "" {
			in = append(in, proved{l.Index, e.leaf})
			b.eventsIn++
		}
	}
	for _, e := range b.entries {
		if e.line.Proved {
			b.proved++
		} else {
			b.unproved++
		}
	}
	if err := b.proveRedactions(ctx, log, why, func(index int64, leaf doorledger.LogHash) { in = append(in, proved{index, leaf}) }); err != nil {
		return err
	}
	if b.r.LogHead == nil {
		return nil
	}

	slices.SortFunc(in, func(x, y proved) int { return cmp.Compare(x.index, y.index) })
	// A redaction's entry may be in audit.jsonl too: one leaf.
	in = slices.CompactFunc(in, func(x, y proved) bool { return x.index == y.index && x.leaf == y.leaf })
	indexes := make([]int64, len(in))
	hashes := make([]doorledger.LogHash, len(in))
	for i, p := range in {
		if i > 0 && p.index == in[i-1].index {
			return fmt.Errorf("two entries at index %d of the log", p.index)
		}
		indexes[i], hashes[i] = p.index, p.leaf
	}
	if b.multi, err = log.ProveInclusions(ctx, indexes, b.headSize); err != nil {
		return err
	}
	if err := auditlog.CheckInclusions(b.multi, hashes, doorledger.LogHead{Size: b.headSize, Root: b.headRoot}); err != nil {
		return fmt.Errorf("the log's proof does not verify against the signed head: %w", err)
	}
	return nil
}

// leavesByID reads where the rows of kind are in the log, by id.
func leavesByID(ctx context.Context, log Prover, kind string, ids []int64) (map[int64]doorledger.LogLeaf, error) {
	out := make(map[int64]doorledger.LogLeaf, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	list, err := log.LogLeaves(ctx, kind, ids)
	if err != nil {
		return nil, err
	}
	for _, l := range list {
		out[l.RefID] = l
	}
	return out, nil
}

// auditFile adds audit.jsonl.
func (b *bundle) auditFile() error {
	var buf bytes.Buffer
	for _, e := range b.entries {
		data, err := marshalJSON(e.line, false)
		if err != nil {
			return fmt.Errorf("evidence bundle %s: audit entry %d: %w", b.r.ID, e.line.ID, err)
		}
		buf.Write(data)
	}
	b.add(bundleAudit, buf.Bytes())
	return nil
}

// leafPrefix is how many bytes of each event's leaf hash log-proof.jsonl
// gives: enough to name a changed row of events.csv (a chance in four
// billion of missing it, and then the root names the file), at an eighth
// of the full hash's size. What proves the events is the root their full
// leaves, recomputed from events.csv, give with the nodes; the full hashes
// would make up much of a large bundle (docs/benchmarks.md).
const leafPrefix = 4

// writeProof writes log-proof.jsonl: a header naming the tree, one line per
// unlock event of events.csv in its order (its position, the first bytes of
// its leaf hash, the values events.csv cannot carry exactly, or why it has
// no proof), then the tree's nodes the proved events and journal entries
// need, each once, in the order a walk of the tree from left to right needs
// them.
func (b *bundle) writeProof(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	head := map[string]any{"format": proofFormat, "tree_size": b.multi.Size, "root": b.headRoot.String(),
		"building_id": b.r.Building.ID, "unlock_events": len(b.events), "nodes": len(b.multi.Nodes)}
	data, err := marshalJSON(head, false)
	if err != nil {
		return err
	}
	bw.Write(data)
	var line []byte
	for _, e := range b.events {
		line = append(line[:0], `{"unlock":`...)
		line = strconv.AppendInt(line, e.id, 10)
		line = append(line, `,"index":`...)
		if e.index >= 0 {
			line = strconv.AppendInt(line, e.index, 10)
		} else {
			line = append(line, "null"...)
		}
		line = append(line, `,"leaf":"`...)
		line = hex.AppendEncode(line, e.leaf[:leafPrefix])
		line = append(line, '"')
		if e.red != nil {
			line = append(line, `,"redacted":{"by":`...)
			line = strconv.AppendInt(line, e.red.by, 10)
			line = append(line, `,"leaf":"`...)
			line = hex.AppendEncode(line, e.red.leaf.Logged[:])
			line = append(line, `"}`...)
		}
		if e.fields != nil {
			f, err := marshalJSON(e.fields, false)
			if err != nil {
				return err
			}
			line = append(line, `,"fields":`...)
			line = append(line, bytes.TrimSuffix(f, []byte("\n"))...)
		}
		if e.reason != "" {
			r, err := json.Marshal(e.reason)
			if err != nil {
				return err
			}
			line = append(line, `,"reason":`...)
			line = append(line, r...)
		}
		line = append(line, "}\n"...)
		if _, err := bw.Write(line); err != nil {
			return err
		}
	}
	for _, n := range b.multi.Nodes {
		line = append(line[:0], `{"node":[`...)
		line = strconv.AppendInt(line, int64(n.Level), 10)
		line = append(line, ',')
		line = strconv.AppendInt(line, n.Index, 10)
		line = append(line, `],"hash":"`...)
		line = hex.AppendEncode(line, n.Hash[:])
		line = append(line, "\"}\n"...)
		if _, err := bw.Write(line); err != nil {
			return err
		}
	}
	return bw.Flush()
}

var readmeTemplate = template.Must(template.New("README").Parse(`Doorledger evidence bundle
==========================

Report      {{.ID}}
Building    {{.Building}} (#{{.BuildingID}})
Address     {{.Address}}
Range       {{.From}} to {{.To}}, both included, in building time ({{.Zone}})
Generated   {{.GeneratedLocal}} ({{.GeneratedUTC}}) for {{.GeneratedBy}}
Log head    {{.Head}}
Log origin  {{.Origin}}

This zip holds everything the audit report of this building and range rests
on, so that it can be checked without the portal: the report itself, the
consents with their signatures, the unlock events, the commands sent to the
devices, and the building's journal, with a proof that the portal's
tamper-evident log holds every unlock event and journal entry unchanged.

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
consents/<id>-paper-<n>.pdf|.jpg|.png
    The signed paper form an installer (or a manager, for a signer) attached to
    the request, byte for byte as stored; paper_form in consents/<id>.json gives
    each file's SHA-256, who the form is said to be signed by and each one's
    answer (confirmed with their signature, or disputed). Open a PDF form only
    in a reader you trust: the portal never opened it.
audit.jsonl
    The building's journal in the range ({{.Entries}} entries: {{.Proved}} proved in the
    log, {{.Unproved}} not), one JSON object per line, with the entry as recorded,
    its canonical encoding in the log (base64), its leaf hash and its index in
    the log; "proved": false and a "reason" when log-proof.jsonl does not
    prove it (an entry appended after the head, or not yet appended, proves
    nothing yet).
log-proof.jsonl
    The proof that the log holds the events and entries: a first line naming
    the tree (size, root), then one line per row of events.csv, in its order
    ({{.EventsProved}} of {{.Events}} proved), with the event's index in the log and
    the first 4 bytes of its leaf hash, which name a changed row (and the
    values events.csv cannot carry exactly, if any, or the reason it has no
    proof), then the {{.Nodes}} nodes of the Merkle tree (RFC 6962) that, with the
    leaves recomputed from events.csv and audit.jsonl, give the signed root:
    "node": [level, index] is the subtree of the 2^level entries from
    index * 2^level. Nodes shared by many entries are stored once.
log-head.txt
    The signed head of the portal's verifiable log that the report covers: a
    checkpoint in the C2SP tlog-checkpoint format (c2sp.org/tlog-checkpoint),
    whose text is the log's origin line, its size and its root hash (base64),
    signed as a note (golang.org/x/mod/sumdb/note).
verifier-key.txt
    The portal's public key (note verifier key) that verifies log-head.txt.
    Every report prints it too.
witness-checkpoint.txt, witness-proof.txt, witnesses-configured.txt
    When the portal has witnesses: the latest checkpoint that met the witness
    policy when the report was generated, with the cosignatures of the
    witnesses (c2sp.org/tlog-cosignature), and the consistency proof that
    log-head.txt extends it. witnesses-configured.txt lists the witnesses the
    portal had then, for reference: verify with the keys your board got from
    the witnesses themselves (step 3).
verify.go
    A Go program, standard library only, that checks all of the above (step 3).

Times in the JSON files are UTC (RFC 3339).

How to verify
-------------
1. The bundle. The portal registered this zip's SHA-256 when it made it.
   Upload the zip on the portal's "Verify a report" page, or compare
   "sha256sum {{.ID}}.zip" with the SHA-256 the report's page shows.

2. The files. The manifest below is in sha256sum format. In the unzipped
   directory:

       sed -n '/^Manifest/,$p' README.txt | grep '  ' | sha256sum -c

3. The log. With Go installed, in the unzipped directory, offline:

       go run verify.go [the verifier key your portal shows]

   verify.go needs no module and no network. It checks the manifest, that
   log-head.txt is signed by verifier-key.txt (Ed25519), the consents' terms,
   and that every unlock event of events.csv and every journal entry of
   audit.jsonl is in the log: it re-encodes each one as the log did, hashes
   it as a leaf (SHA-256 of a zero byte and the encoding), checks it against
   the leaf hash listed (for an event, its first bytes), and checks that the
   leaves and the nodes of log-proof.jsonl give the signed root. It exits non-zero naming the first
   file, row or entry that does not verify. Check that verifier-key.txt is
   the key your portal shows (admin pages, every report): a bundle signed
   with another key proves nothing.

   Witnesses. Keep a file of the witnesses your board trusts, one key a line
   as each witness printed it, and "k N" for how many must have cosigned:

       go run verify.go -witnesses board-witnesses.txt [the verifier key]

   It checks each cosignature of witness-checkpoint.txt against those keys,
   that log-head.txt extends that checkpoint (witness-proof.txt), says which
   witnesses vouched and when, names those missing, and exits non-zero when
   fewer than k vouched.

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
	head, origin := "none: the log was empty when the report was made", "none"
	if r.LogHead != nil {
		head = fmt.Sprintf("%d entries, root %s, signed %s", r.LogHead.Size, r.LogHead.Root, formatUTC(r.LogHead.At))
		if origin = r.LogHead.Origin(); origin == "" {
			origin = `none: the head was signed before checkpoints ("go.sum database tree")`
		}
	}
	nodes := 0
	if b.multi != nil {
		nodes = len(b.multi.Nodes)
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
		"GeneratedBy": oneLine(r.GeneratedBy), "Head": head, "Origin": oneLine(origin),
		"Events": number64(int64(len(b.events))), "EventsProved": number64(int64(b.eventsIn)), "Nodes": number64(int64(nodes)),
		"Commands": len(r.Commands), "Consents": len(b.consentIDs),
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
