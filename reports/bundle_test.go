package reports_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/auditlog"
	"github.com/doorledger/doorledger/internal/testtool"
	"github.com/doorledger/doorledger/reports"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// memLog is a verifiable log held in memory, with the tree arithmetic,
// proofs and signatures of the real one (auditlog, tlog): the Prover the
// bundle tests prove their entries with. (runner_test.go proves against
// db.LogService.)
type memLog struct {
	key    *auditlog.Key
	hashes []tlog.Hash
	n      int64
	index  map[string]int64
}

func newMemLog(tb testing.TB) *memLog {
	tb.Helper()
	key, err := auditlog.LoadOrCreateKey(filepath.Join(tb.TempDir(), auditlog.KeyFile), "doorledger.test/log")
	if err != nil {
		tb.Fatal(err)
	}
	return &memLog{key: key, index: map[string]int64{}}
}

func (l *memLog) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		if x < 0 || x >= int64(len(l.hashes)) {
			return nil, fmt.Errorf("no stored hash %d", x)
		}
		out[i] = l.hashes[x]
	}
	return out, nil
}

// append logs an entry's encoding as the next leaf.
func (l *memLog) append(tb testing.TB, kind string, id int64, enc []byte) {
	tb.Helper()
	hs, err := tlog.StoredHashes(l.n, enc, l)
	if err != nil {
		tb.Fatal(err)
	}
	l.hashes = append(l.hashes, hs...)
	l.index[fmt.Sprintf("%s/%d", kind, id)] = l.n
	l.n++
}

func (l *memLog) appendAudit(tb testing.TB, e *doorledger.AuditEntry) {
	tb.Helper()
	enc, err := auditlog.EncodeAudit(e)
	if err != nil {
		tb.Fatal(err)
	}
	l.append(tb, doorledger.LogKindAudit, e.ID, enc)
}

// filler logs n unlock events of another building.
func (l *memLog) filler(tb testing.TB, n int) {
	tb.Helper()
	for i := 0; i < n; i++ {
		id := l.n + 50_000
		ev := &doorledger.UnlockEvent{ID: id, BuildingID: 99, DeviceID: 1, EventID: fmt.Sprint(id), OccurredAt: auditGeneratedAt,
			ReceivedAt: auditGeneratedAt, Method: "keypad", Result: doorledger.UnlockGranted}
		enc, err := auditlog.EncodeUnlock(ev)
		if err != nil {
			tb.Fatal(err)
		}
		l.append(tb, doorledger.LogKindUnlock, id, enc)
	}
}

// head signs the head of the log's first size entries.
func (l *memLog) head(tb testing.TB, size int64) *doorledger.LogHead {
	tb.Helper()
	root, err := tlog.TreeHash(size, l)
	if err != nil {
		tb.Fatal(err)
	}
	msg, err := auditlog.SignHead(l.key.Signer(), size, doorledger.LogHash(root))
	if err != nil {
		tb.Fatal(err)
	}
	return &doorledger.LogHead{Size: size, Root: doorledger.LogHash(root), Note: msg, At: auditGeneratedAt}
}

func (l *memLog) EntryIndex(ctx context.Context, kind string, refID int64) (int64, error) {
	i, ok := l.index[fmt.Sprintf("%s/%d", kind, refID)]
	if !ok {
		return 0, doorledger.Errorf(doorledger.ENOTFOUND, "%s #%d is not in the audit log (yet).", kind, refID)
	}
	return i, nil
}

func (l *memLog) ProveInclusion(ctx context.Context, index, size int64) (*doorledger.LogInclusionProof, error) {
	return auditlog.ProveInclusion(index, size, func(idx []int64) ([]doorledger.LogHash, error) {
		hs, err := l.ReadHashes(idx)
		out := make([]doorledger.LogHash, len(hs))
		for i, h := range hs {
			out[i] = doorledger.LogHash(h)
		}
		return out, err
	})
}

// SampleBundleReport returns SampleAuditReport with a real log behind it:
// journal entries 7001 and 7002 are in the tree of its signed head, 7003 was
// appended after the head, and 7004 is not in the log yet.
func SampleBundleReport(tb testing.TB) (*doorledger.AuditReport, *memLog) {
	tb.Helper()
	r := SampleAuditReport(tb)
	l := newMemLog(tb)
	l.filler(tb, 5)
	l.appendAudit(tb, r.AuditEntries[0])
	l.filler(tb, 3)
	l.appendAudit(tb, r.AuditEntries[1])
	l.filler(tb, 2)
	r.LogHead = l.head(tb, l.n)
	r.VerifierKey = l.key.VerifierKey()
	l.appendAudit(tb, r.AuditEntries[2])
	return r, l
}

// MustBundle writes r's evidence bundle and reads it back as a zip.
func MustBundle(tb testing.TB, r *doorledger.AuditReport, l reports.Prover) ([]byte, *zip.Reader) {
	tb.Helper()
	var buf bytes.Buffer
	if err := reports.EvidenceBundle(context.Background(), &buf, r, l); err != nil {
		tb.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		tb.Fatalf("the bundle is not a zip: %v", err)
	}
	return buf.Bytes(), zr
}

// zipFiles returns the contents of every file of a zip, by name, checking
// each file's CRC as archive/zip reads it.
func zipFiles(tb testing.TB, zr *zip.Reader) map[string][]byte {
	tb.Helper()
	files := map[string][]byte{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			tb.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			tb.Fatalf("%s: %v", f.Name, err)
		}
		files[f.Name] = data
	}
	return files
}

// manifest returns the SHA-256s README.txt lists, by file name.
func manifest(tb testing.TB, readme []byte) map[string]string {
	tb.Helper()
	_, list, ok := strings.Cut(string(readme), "\nManifest (SHA-256)\n")
	if !ok {
		tb.Fatal("README.txt has no manifest")
	}
	m := map[string]string{}
	for _, line := range strings.Split(list, "\n") {
		if sum, name, ok := strings.Cut(line, "  "); ok {
			m[name] = sum
		}
	}
	return m
}

func TestEvidenceBundle_Files(t *testing.T) {
	r, l := SampleBundleReport(t)
	_, zr := MustBundle(t, r, l)
	files := zipFiles(t, zr)

	var names []string
	for _, f := range zr.File {
		names = append(names, f.Name)
		if !f.Modified.Equal(r.GeneratedAt) {
			t.Errorf("%s modified %s, want the report's time %s", f.Name, f.Modified, r.GeneratedAt)
		}
	}
	want := []string{"README.txt", "audit.jsonl", "commands.csv",
		"consents/30-signature.png", "consents/30-terms.txt", "consents/30.json",
		"consents/42-signature.png", "consents/42-terms.txt", "consents/42.json",
		"consents/43-signature.png", "consents/43-terms.txt", "consents/43.json",
		"events.csv", "log-head.txt", "report.pdf", "verifier-key.txt", "verify.go"}
	if !slices.Equal(names, want) {
		t.Fatalf("files:\n got %q\nwant %q", names, want)
	}

	// The manifest lists every other file with its SHA-256.
	m := manifest(t, files["README.txt"])
	if len(m) != len(want)-1 {
		t.Errorf("the manifest lists %d files, want %d", len(m), len(want)-1)
	}
	for name, data := range files {
		if name == "README.txt" {
			continue
		}
		if sum := sha256.Sum256(data); m[name] != hex.EncodeToString(sum[:]) {
			t.Errorf("%s: SHA-256 %x, the manifest says %q", name, sum, m[name])
		}
	}

	// The PDF and the CSV are the ones printed on their own.
	var pdf, events bytes.Buffer
	if err := reports.AuditReportPDF(&pdf, r); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(files["report.pdf"], pdf.Bytes()) {
		t.Error("report.pdf differs from the PDF of the same report")
	}
	MustQPDFCheck(t, testtool.Require(t, "qpdf"), files["report.pdf"])
	if text := MustLayoutText(t, files["report.pdf"]); !containsText(text, "Report id "+r.ID) {
		t.Error("report.pdf does not name the report id")
	}
	if err := reports.AuditReportCSV(&events, r); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(files["events.csv"], events.Bytes()) {
		t.Error("events.csv differs from the CSV of the same report")
	}

	// The consents: the signature and terms as stored, the evidence in JSON.
	for _, c := range r.Consents {
		base := fmt.Sprintf("consents/%d", c.ID)
		if !bytes.Equal(files[base+"-signature.png"], c.Signature.SignaturePNG) {
			t.Errorf("%s-signature.png differs from the consent's image", base)
		}
		if string(files[base+"-terms.txt"]) != c.Signature.Terms {
			t.Errorf("%s-terms.txt differs from the terms signed", base)
		}
	}
	var c42 map[string]any
	if err := json.Unmarshal(files["consents/42.json"], &c42); err != nil {
		t.Fatal(err)
	}
	sample := SampleConsent(t)
	for path, want := range map[string]any{
		"format": "doorledger-consent-evidence/1", "id": 42.0, "device_id": 3.0, "status": "signed",
		"building":                                 "Οικία Παπαδοπούλου / Дом на Невском",
		"device.serial":                            "SN-4F2A-0091-ZX",
		"installer":                                "Łukasz Wróbel",
		"company":                                  `Wróbel <script>alert("pwned")</script> & Sons`,
		"signer.name":                              "Zoë Nuñez",
		"signer.roster_title":                      "Board president",
		"signer.email":                             "zoe.nunez@example.org",
		"signature.typed_name":                     "Zoë Nuñez",
		"signature.signed_at":                      "2026-03-14T15:04:05Z",
		"signature.ip":                             "203.0.113.7",
		"signature.user_agent":                     sample.Signature.UserAgent,
		"signature.verification_method":            "code",
		"signature.terms_sha256":                   sample.Signature.TermsSHA256,
		"signature.terms_file":                     "consents/42-terms.txt",
		"signature.signature_png_file":             "consents/42-signature.png",
		"signature.signature_png_sha256":           m["consents/42-signature.png"],
		"checks.terms_file_hashes_to_terms_sha256": true,
		"expires_at":                               "2027-03-14T15:04:05Z",
	} {
		var v any = c42
		for _, k := range strings.Split(path, ".") {
			v = v.(map[string]any)[k]
		}
		if v != want {
			t.Errorf("consents/42.json %s = %#v, want %#v", path, v, want)
		}
	}
	var c43 map[string]any
	json.Unmarshal(files["consents/43.json"], &c43)
	if c43["status"] != "withdrawn" || c43["status_note"] != "The garage is no longer used for deliveries." || c43["status_at"] != "2026-11-10T17:45:00Z" {
		t.Errorf("consents/43.json: status %v, note %v, at %v", c43["status"], c43["status_note"], c43["status_at"])
	}

	if got := string(files["commands.csv"]); !strings.Contains(got, "requested_at (Europe/Zurich)") ||
		!strings.Contains(got, "902,4,#4 PB2-00417-Ω,disable,2,consent #43 withdrawn,system,2026-11-10T18:45:00+01:00,2026-11-10T18:45:00.01+01:00,1,2026-11-10T18:45:02.4+01:00,2.400,confirmed,") {
		t.Errorf("commands.csv:\n%s", got)
	}
	if got := string(files["log-head.txt"]); got != r.LogHead.Note {
		t.Errorf("log-head.txt = %q, want the head's note", got)
	}
	if got := strings.TrimSpace(string(files["verifier-key.txt"])); got != r.VerifierKey {
		t.Errorf("verifier-key.txt = %q, want %q", got, r.VerifierKey)
	}
	readme := string(files["README.txt"])
	for _, want := range []string{"Report      " + r.ID, "2026-11-01 to 2026-11-21", "Europe/Zurich",
		fmt.Sprintf("%d entries, root %s", r.LogHead.Size, r.LogHead.Root), "The 300 unlock events",
		"(4 entries: 2 with a proof,\n    2 without)", "go run verify.go"} {
		if !strings.Contains(readme, want) {
			t.Errorf("README.txt lacks %q", want)
		}
	}
	if v := goModVersion(t, "golang.org/x/mod"); !strings.Contains(readme, "golang.org/x/mod@"+v) {
		t.Errorf("README.txt does not name golang.org/x/mod@%s, the version verify.go is built with", v)
	}
}

// goModVersion returns the version of module path the project requires.
func goModVersion(tb testing.TB, path string) string {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join("..", "go.mod"))
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == path {
			return f[1]
		}
	}
	tb.Fatalf("go.mod does not require %s", path)
	return ""
}

type auditLine struct {
	ID       int64  `json:"id"`
	Encoding string `json:"encoding"`
	LeafHash string `json:"leaf_hash"`
	Index    *int64 `json:"index"`
	Proof    *struct {
		TreeSize int64    `json:"tree_size"`
		Root     string   `json:"root"`
		Hashes   []string `json:"hashes"`
	} `json:"proof"`
	Reason string `json:"reason"`
}

func auditLines(tb testing.TB, data []byte) []auditLine {
	tb.Helper()
	var lines []auditLine
	for _, l := range bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n")) {
		var a auditLine
		if err := json.Unmarshal(l, &a); err != nil {
			tb.Fatalf("audit.jsonl: %v: %s", err, l)
		}
		lines = append(lines, a)
	}
	return lines
}

// openHead checks the bundle's signed head with its key, as a board would.
func openHead(tb testing.TB, files map[string][]byte) tlog.Tree {
	tb.Helper()
	v, err := note.NewVerifier(strings.TrimSpace(string(files["verifier-key.txt"])))
	if err != nil {
		tb.Fatal(err)
	}
	n, err := note.Open(files["log-head.txt"], note.VerifierList(v))
	if err != nil {
		tb.Fatalf("log-head.txt does not verify: %v", err)
	}
	tree, err := tlog.ParseTree([]byte(n.Text))
	if err != nil {
		tb.Fatal(err)
	}
	return tree
}

// checkProof checks an audit line's proof against the head with tlog, from
// the line's encoding, and returns the entry it encodes.
func checkProof(tb testing.TB, tree tlog.Tree, a auditLine) *doorledger.AuditEntry {
	tb.Helper()
	enc, err := base64.StdEncoding.DecodeString(a.Encoding)
	if err != nil {
		tb.Fatal(err)
	}
	if a.Proof == nil || a.Index == nil {
		tb.Fatalf("audit #%d: no proof (%s)", a.ID, a.Reason)
	}
	if a.Proof.TreeSize != tree.N || a.Proof.Root != hex.EncodeToString(tree.Hash[:]) {
		tb.Errorf("audit #%d: proof for size %d root %s, head %d %x", a.ID, a.Proof.TreeSize, a.Proof.Root, tree.N, tree.Hash)
	}
	var p tlog.RecordProof
	for _, h := range a.Proof.Hashes {
		b, err := hex.DecodeString(h)
		if err != nil || len(b) != 32 {
			tb.Fatalf("audit #%d: proof hash %q", a.ID, h)
		}
		p = append(p, tlog.Hash(b))
	}
	leaf := tlog.RecordHash(enc)
	if hex.EncodeToString(leaf[:]) != a.LeafHash {
		tb.Errorf("audit #%d: leaf_hash %s, the encoding hashes to %x", a.ID, a.LeafHash, leaf)
	}
	if err := tlog.CheckRecord(p, tree.N, tree.Hash, *a.Index, leaf); err != nil {
		tb.Errorf("audit #%d: the proof does not verify: %v", a.ID, err)
	}
	e, err := auditlog.Decode(enc)
	if err != nil || e.Audit == nil {
		tb.Fatalf("audit #%d: encoding does not decode: %v", a.ID, err)
	}
	return e.Audit
}

func TestEvidenceBundle_Proofs(t *testing.T) {
	r, l := SampleBundleReport(t)
	_, zr := MustBundle(t, r, l)
	files := zipFiles(t, zr)
	tree := openHead(t, files)
	if tree.N != r.LogHead.Size || tree.Hash != tlog.Hash(r.LogHead.Root) {
		t.Fatalf("log-head.txt signs %d %x, want the report's head", tree.N, tree.Hash)
	}
	lines := auditLines(t, files["audit.jsonl"])
	if len(lines) != 4 {
		t.Fatalf("%d lines in audit.jsonl, want the report's 4 entries", len(lines))
	}
	for i, a := range lines[:2] {
		if e := checkProof(t, tree, a); fmt.Sprint(*e) != fmt.Sprint(*r.AuditEntries[i]) {
			t.Errorf("line %d encodes %+v, want %+v", i, *e, *r.AuditEntries[i])
		}
	}
	if a := lines[2]; a.Proof != nil || a.Index == nil || *a.Index != tree.N || !strings.Contains(a.Reason, "after the report's signed head") {
		t.Errorf("entry appended after the head: index %v, proof %v, reason %q", a.Index, a.Proof, a.Reason)
	}
	if a := lines[3]; a.Proof != nil || a.Index != nil || !strings.Contains(a.Reason, "not yet in the log") {
		t.Errorf("entry not in the log: index %v, proof %v, reason %q", a.Index, a.Proof, a.Reason)
	}
	for _, a := range lines[2:] {
		if enc, _ := base64.StdEncoding.DecodeString(a.Encoding); len(enc) == 0 {
			t.Errorf("audit #%d: no encoding without a proof", a.ID)
		}
	}
}

// TestEvidenceBundle_ChangedEntry: an entry edited after it was logged gets
// no proof, and the line says it changed.
func TestEvidenceBundle_ChangedEntry(t *testing.T) {
	r, l := SampleBundleReport(t)
	r.AuditEntries[1].Detail = `{"reason":"(edited)"}`
	_, zr := MustBundle(t, r, l)
	lines := auditLines(t, zipFiles(t, zr)["audit.jsonl"])
	if a := lines[1]; a.Proof != nil || !strings.Contains(a.Reason, "CHANGED after it was logged") {
		t.Errorf("changed entry: proof %v, reason %q", a.Proof, a.Reason)
	}
	if lines[0].Proof == nil {
		t.Error("the unchanged entry lost its proof")
	}
}

func TestEvidenceBundle_Deterministic(t *testing.T) {
	r, l := SampleBundleReport(t)
	a, _ := MustBundle(t, r, l)
	b, _ := MustBundle(t, r, l)
	if !bytes.Equal(a, b) {
		t.Error("the same report gave two different bundles")
	}
	r.GeneratedAt = r.GeneratedAt.Add(1e9)
	c, _ := MustBundle(t, r, l)
	if bytes.Equal(a, c) {
		t.Error("a bundle generated a second later has the same bytes")
	}
}

func TestEvidenceBundle_NoHead(t *testing.T) {
	r := SampleAuditReport(t)
	r.LogHead, r.VerifierKey = nil, ""
	r.Events, r.Devices, r.Consents, r.Commands = nil, nil, nil, nil
	_, zr := MustBundle(t, r, newMemLog(t))
	files := zipFiles(t, zr)
	for _, name := range []string{"log-head.txt", "verifier-key.txt"} {
		if _, ok := files[name]; ok {
			t.Errorf("%s without a head", name)
		}
	}
	for _, a := range auditLines(t, files["audit.jsonl"]) {
		if a.Proof != nil || !strings.Contains(a.Reason, "no signed head") {
			t.Errorf("audit #%d without a head: proof %v, reason %q", a.ID, a.Proof, a.Reason)
		}
	}
	if rows := strings.Count(string(files["events.csv"]), "\n"); rows != 1 {
		t.Errorf("events.csv has %d lines without events, want the header", rows)
	}
	if !strings.Contains(string(files["README.txt"]), "none: the log was empty") {
		t.Error("README.txt does not say there is no head")
	}
}

func TestEvidenceBundle_Refuses(t *testing.T) {
	r, l := SampleBundleReport(t)
	other := newMemLog(t)
	r.VerifierKey = other.key.VerifierKey() // the head is not signed by this key
	if err := reports.EvidenceBundle(context.Background(), io.Discard, r, l); err == nil || !strings.Contains(err.Error(), "does not verify") {
		t.Errorf("head signed by another key: %v", err)
	}

	r, l = SampleBundleReport(t)
	r.LogHead.Size-- // the note signs another size
	if err := reports.EvidenceBundle(context.Background(), io.Discard, r, l); err == nil || !strings.Contains(err.Error(), "signs size") {
		t.Errorf("head whose note signs another size: %v", err)
	}

	r, l = SampleBundleReport(t)
	r.From, r.To = "2026-11-21", "2026-11-01"
	if err := reports.EvidenceBundle(context.Background(), io.Discard, r, l); doorledger.ErrorCode(err) != doorledger.EINVALID {
		t.Errorf("bad range: %v, want EINVALID", err)
	}

	// Events that change between the passes: the bundle is refused, not
	// written with a manifest that lies.
	r, l = SampleBundleReport(t)
	calls := 0
	sample := SampleEvents(r, 300)
	r.Events = func(yield func(*doorledger.UnlockEvent) error) error {
		calls++
		if calls == 4 { // the PDF's two passes, events.csv hashed, then written
			return SampleEvents(r, 299)(yield)
		}
		return sample(yield)
	}
	if err := reports.EvidenceBundle(context.Background(), io.Discard, r, l); err == nil || !strings.Contains(err.Error(), "events changed") {
		t.Errorf("events changed while written: %v", err)
	}
}

// TestEvidenceBundle_VerifyProgram runs the bundle's own verify.go on the
// unzipped bundle: it passes, and it names a changed file, a changed entry
// and a proof against another head.
func TestEvidenceBundle_VerifyProgram(t *testing.T) {
	goBin := testtool.Require(t, "go")
	bin := filepath.Join(t.TempDir(), "verify")
	if out, err := exec.Command(goBin, "build", "-o", bin, "./bundleverify").CombinedOutput(); err != nil {
		t.Fatalf("go build ./bundleverify: %v\n%s", err, out)
	}
	r, l := SampleBundleReport(t)
	_, zr := MustBundle(t, r, l)
	files := zipFiles(t, zr)
	if src, _ := os.ReadFile(filepath.Join("bundleverify", "verify.go")); !bytes.Equal(files["verify.go"], src) {
		t.Fatal("verify.go in the bundle is not ./bundleverify/verify.go")
	}
	unzip := func(t *testing.T, edit func(files map[string][]byte)) string {
		dir := t.TempDir()
		fs := map[string][]byte{}
		for k, v := range files {
			fs[k] = bytes.Clone(v)
		}
		if edit != nil {
			edit(fs)
		}
		for name, data := range fs {
			p := filepath.Join(dir, filepath.FromSlash(name))
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	run := func(dir string, args ...string) (string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	// reManifest rewrites README.txt's manifest for the edited files, as a
	// forger would.
	reManifest := func(fs map[string][]byte) {
		readme := string(fs["README.txt"])
		for name, sum := range manifest(t, fs["README.txt"]) {
			now := sha256.Sum256(fs[name])
			readme = strings.ReplaceAll(readme, sum+"  "+name, hex.EncodeToString(now[:])+"  "+name)
		}
		fs["README.txt"] = []byte(readme)
	}

	t.Run("intact", func(t *testing.T) {
		out, err := run(unzip(t, nil), r.VerifierKey)
		if err != nil {
			t.Fatalf("verify: %v\n%s", err, out)
		}
		for _, want := range []string{"files: 16 match the manifest", fmt.Sprintf("%d entries", r.LogHead.Size),
			"audit entries: 2 proved in the signed log, 2 without a proof", "OK: the bundle verifies"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
	})
	for _, tt := range []struct {
		name string
		args []string
		edit func(fs map[string][]byte)
		want string
	}{
		{"changed file", nil, func(fs map[string][]byte) { fs["events.csv"][200] ^= 1 }, "events.csv: SHA-256"},
		{"missing file", nil, func(fs map[string][]byte) { delete(fs, "consents/43.json") }, "consents/43.json: listed in the manifest but missing"},
		{"added file", nil, func(fs map[string][]byte) { fs["consents/44.json"] = []byte("{}") }, "consents/44.json: not in the manifest"},
		{"other key", []string{newMemLog(t).key.VerifierKey()}, nil, "not the key given"},
		{"changed entry", nil, func(fs map[string][]byte) {
			fs["audit.jsonl"] = bytes.Replace(fs["audit.jsonl"], []byte(`"device.enable"`), []byte(`"device.disable"`), 1)
			reManifest(fs)
		}, "(audit #7001): the entry's fields are not the encoding the log holds"},
		{"changed terms", nil, func(fs map[string][]byte) {
			fs["consents/42-terms.txt"] = append(fs["consents/42-terms.txt"], ' ')
			reManifest(fs)
		}, "consents/42.json: the terms signed"},
		{"proof against another head", nil, func(fs map[string][]byte) {
			other := l.head(t, l.n) // signed by the same key, one entry later
			fs["log-head.txt"] = []byte(other.Note)
			reManifest(fs)
		}, "a proof for a tree of"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, err := run(unzip(t, tt.edit), tt.args...)
			if err == nil {
				t.Fatalf("verify passed:\n%s", out)
			}
			if !strings.Contains(out, "FAILED: ") || !strings.Contains(out, tt.want) {
				t.Errorf("output lacks %q:\n%s", tt.want, out)
			}
		})
	}
}

// bundleChildEnv asks TestEvidenceBundleChild for a "pdf" or "bundle" of
// benchEvents events.
const bundleChildEnv = "DOORLEDGER_BUNDLE_CHILD"

// BenchmarkEvidenceBundle100k makes the evidence bundle of 100,000 events
// and, in the same run, the PDF alone, each in a fresh child process
// (TestEvidenceBundleChild) so that its peak resident set (VmHWM) is its
// own. It reports each one's wall and CPU seconds, peak RSS and file size.
func BenchmarkEvidenceBundle100k(b *testing.B) {
	for b.Loop() {
		for _, kind := range []string{"pdf", "bundle"} {
			cmd := exec.Command(os.Args[0], "-test.run=^TestEvidenceBundleChild$", "-test.count=1", "-test.v")
			cmd.Env = append(os.Environ(), bundleChildEnv+"="+kind)
			out, err := cmd.CombinedOutput()
			if err != nil {
				b.Fatalf("child: %v\n%s", err, out)
			}
			var secs, cpu, peak, mb float64
			found := false
			for line := range strings.Lines(string(out)) {
				if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "BUNDLECHILD "); ok {
					if _, err := fmt.Sscanf(rest, "seconds=%g cpu_seconds=%g peak_mb=%g file_mb=%g", &secs, &cpu, &peak, &mb); err != nil {
						b.Fatalf("child: %q: %v", line, err)
					}
					found = true
				}
			}
			if !found {
				b.Fatalf("child printed no result:\n%s", out)
			}
			b.ReportMetric(secs, kind+"-s")
			b.ReportMetric(cpu, kind+"-CPU-s")
			b.ReportMetric(peak, kind+"-peak-RSS-MB")
			b.ReportMetric(mb, kind+"-file-MB")
		}
	}
}

// TestEvidenceBundleChild writes a PDF or a bundle of benchEvents events to
// a file and says how long it took and the process's peak resident set. It
// runs only as BenchmarkEvidenceBundle100k's child.
func TestEvidenceBundleChild(t *testing.T) {
	kind := os.Getenv(bundleChildEnv)
	if kind == "" {
		t.Skip("run by BenchmarkEvidenceBundle100k")
	}
	r, l := SampleBundleReport(t)
	r.From, r.To = "2025-11-22", "2026-11-21"
	r.Events = SampleEvents(r, benchEvents)
	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	cpu0 := cpuTime(t)
	start := time.Now()
	w := &lineCounter{w: f}
	if kind == "pdf" {
		err = reports.AuditReportPDF(w, r)
	} else {
		err = reports.EvidenceBundle(context.Background(), w, r, l)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	elapsed, cpu := time.Since(start), cpuTime(t)-cpu0
	peak := procStatusKB(t, "self", "VmHWM")
	fmt.Printf("BUNDLECHILD seconds=%g cpu_seconds=%g peak_mb=%g file_mb=%g\n", elapsed.Seconds(), cpu.Seconds(), float64(peak)/1024, float64(w.bytes)/(1<<20))
}
