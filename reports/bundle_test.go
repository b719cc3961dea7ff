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
	"path/filepath"
	"slices"
	"strings"
	"testing"

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
	l.index[fmt.Sprintf("%s/%d", kind, id)] = l.n
	l.appendLeaf(tb, enc)
}

// appendLeaf logs an entry no test looks up.
func (l *memLog) appendLeaf(tb testing.TB, enc []byte) {
	hs, err := tlog.StoredHashes(l.n, enc, l)
	if err != nil {
		tb.Fatal(err)
	}
	l.hashes = append(l.hashes, hs...)
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
		l.appendLeaf(tb, enc)
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

func (l *memLog) LogLeaves(ctx context.Context, kind string, ids []int64) ([]doorledger.LogLeaf, error) {
	var out []doorledger.LogLeaf
	for _, id := range ids {
		i, ok := l.index[fmt.Sprintf("%s/%d", kind, id)]
		if !ok {
			continue
		}
		h, err := l.ReadHashes([]int64{tlog.StoredHashIndex(0, i)})
		if err != nil {
			return nil, err
		}
		out = append(out, doorledger.LogLeaf{Kind: kind, RefID: id, Index: i, Hash: doorledger.LogHash(h[0])})
	}
	return out, nil
}

func (l *memLog) ProveInclusions(ctx context.Context, indexes []int64, size int64) (*doorledger.LogMultiProof, error) {
	return auditlog.ProveInclusions(indexes, size, func(idx []int64) ([]doorledger.LogHash, error) {
		hs, err := l.ReadHashes(idx)
		out := make([]doorledger.LogHash, len(hs))
		for i, h := range hs {
			out[i] = doorledger.LogHash(h)
		}
		return out, err
	})
}

// appendEvents logs the report's unlock events, each after filler of
// other buildings' (every fourth), but for the last ones: those the head
// does not cover are appended after it by SampleBundleReport.
func (l *memLog) appendEvents(tb testing.TB, r *doorledger.AuditReport, skip int) {
	tb.Helper()
	var all []doorledger.UnlockEvent
	r.Events(func(ev *doorledger.UnlockEvent) error {
		all = append(all, *ev)
		return nil
	})
	for i := range all[:len(all)-skip] {
		if i%4 == 0 {
			l.filler(tb, 1+i%3)
		}
		enc, err := auditlog.EncodeUnlock(&all[i])
		if err != nil {
			tb.Fatal(err)
		}
		l.append(tb, doorledger.LogKindUnlock, all[i].ID, enc)
	}
}

// SampleBundleReport returns SampleAuditReport with a real log behind it:
// journal entries 7001 and 7002 are in the tree of its signed head, 7003 was
// appended after the head, and 7004 is not in the log yet; of its 300 unlock
// events, logged among other buildings' events, the first 298 are in the
// tree of its head, the 299th was appended after it and the last is not in
// the log yet.
func SampleBundleReport(tb testing.TB) (*doorledger.AuditReport, *memLog) {
	tb.Helper()
	r := SampleAuditReport(tb)
	l := newMemLog(tb)
	l.filler(tb, 5)
	l.appendAudit(tb, r.AuditEntries[0])
	l.filler(tb, 3)
	l.appendAudit(tb, r.AuditEntries[1])
	l.appendEvents(tb, r, 2)
	l.filler(tb, 2)
	r.LogHead = l.head(tb, l.n)
	r.VerifierKey = l.key.VerifierKey()
	l.appendAudit(tb, r.AuditEntries[2])
	var last []doorledger.UnlockEvent
	r.Events(func(ev *doorledger.UnlockEvent) error {
		last = append(last, *ev)
		return nil
	})
	enc, err := auditlog.EncodeUnlock(&last[len(last)-2])
	if err != nil {
		tb.Fatal(err)
	}
	l.append(tb, doorledger.LogKindUnlock, last[len(last)-2].ID, enc)
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
		"events.csv", "log-head.txt", "log-proof.jsonl", "report.pdf", "verifier-key.txt", "verify.go"}
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
		fmt.Sprintf("%d entries, root %s", r.LogHead.Size, r.LogHead.Root), "Log origin  doorledger.test/log", "The 300 unlock events",
		"(4 entries: 2 proved in the\n    log, 2 not)", "(298 of 300 proved)", "go run verify.go", "needs no module and no network"} {
		if !strings.Contains(readme, want) {
			t.Errorf("README.txt lacks %q", want)
		}
	}
	if strings.Contains(readme, "go get") || strings.Contains(readme, "go mod init") {
		t.Error("README.txt still asks for a module download")
	}
}

type auditLine struct {
	ID       int64  `json:"id"`
	Encoding string `json:"encoding"`
	LeafHash string `json:"leaf_hash"`
	Index    *int64 `json:"index"`
	Proved   bool   `json:"proved"`
	Reason   string `json:"reason"`
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

// openHead checks the bundle's signed head with its key, as a board would
// with note and the checkpoint format.
func openHead(tb testing.TB, files map[string][]byte) auditlog.Checkpoint {
	tb.Helper()
	v, err := note.NewVerifier(strings.TrimSpace(string(files["verifier-key.txt"])))
	if err != nil {
		tb.Fatal(err)
	}
	n, err := note.Open(files["log-head.txt"], note.VerifierList(v))
	if err != nil {
		tb.Fatalf("log-head.txt does not verify: %v", err)
	}
	cp, err := auditlog.ParseCheckpoint(n.Text)
	if err != nil {
		tb.Fatal(err)
	}
	return cp
}

// logProof is log-proof.jsonl, read.
type logProof struct {
	header map[string]any
	events []proofEvent
	proof  doorledger.LogMultiProof
}

type proofEvent struct {
	Unlock int64             `json:"unlock"`
	Index  *int64            `json:"index"`
	Leaf   string            `json:"leaf"`
	Fields map[string]string `json:"fields"`
	Reason string            `json:"reason"`
}

func readLogProof(tb testing.TB, data []byte) *logProof {
	tb.Helper()
	lines := bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n"))
	p := &logProof{}
	if err := json.Unmarshal(lines[0], &p.header); err != nil {
		tb.Fatal(err)
	}
	p.proof.Size = int64(p.header["tree_size"].(float64))
	for _, l := range lines[1:] {
		if bytes.HasPrefix(l, []byte(`{"unlock":`)) {
			var e proofEvent
			if err := json.Unmarshal(l, &e); err != nil {
				tb.Fatalf("%s: %v", l, err)
			}
			p.events = append(p.events, e)
			continue
		}
		var n struct {
			Node [2]int64 `json:"node"`
			Hash string   `json:"hash"`
		}
		if err := json.Unmarshal(l, &n); err != nil {
			tb.Fatalf("%s: %v", l, err)
		}
		node := doorledger.LogNode{Level: int(n.Node[0]), Index: n.Node[1]}
		if b, err := hex.DecodeString(n.Hash); err != nil || len(b) != 32 {
			tb.Fatalf("node hash %q", n.Hash)
		} else {
			copy(node.Hash[:], b)
		}
		p.proof.Nodes = append(p.proof.Nodes, node)
	}
	return p
}

func TestEvidenceBundle_Proofs(t *testing.T) {
	r, l := SampleBundleReport(t)
	_, zr := MustBundle(t, r, l)
	files := zipFiles(t, zr)
	cp := openHead(t, files)
	if cp.Size != r.LogHead.Size || cp.Root != r.LogHead.Root || cp.Origin != "doorledger.test/log" {
		t.Fatalf("log-head.txt signs %+v, want the report's head", cp)
	}
	lines := auditLines(t, files["audit.jsonl"])
	if len(lines) != 4 {
		t.Fatalf("%d lines in audit.jsonl, want the report's 4 entries", len(lines))
	}
	type leaf struct {
		index int64
		hash  doorledger.LogHash
	}
	var leaves []leaf
	for i, a := range lines[:2] {
		enc, _ := base64.StdEncoding.DecodeString(a.Encoding)
		e, err := auditlog.Decode(enc)
		if err != nil || e.Audit == nil || fmt.Sprint(*e.Audit) != fmt.Sprint(*r.AuditEntries[i]) {
			t.Errorf("line %d encodes %v, want %+v", i, err, *r.AuditEntries[i])
		}
		if !a.Proved || a.Index == nil || auditlog.LeafHash(enc).String() != a.LeafHash {
			t.Fatalf("audit #%d: proved %v, index %v, leaf %s", a.ID, a.Proved, a.Index, a.LeafHash)
		}
		leaves = append(leaves, leaf{*a.Index, auditlog.LeafHash(enc)})
	}
	if a := lines[2]; a.Proved || a.Index == nil || *a.Index < cp.Size || !strings.Contains(a.Reason, "after the report's signed head") {
		t.Errorf("entry appended after the head: index %v, proved %v, reason %q", a.Index, a.Proved, a.Reason)
	}
	if a := lines[3]; a.Proved || a.Index != nil || !strings.Contains(a.Reason, "not yet in the log") {
		t.Errorf("entry not in the log: index %v, proved %v, reason %q", a.Index, a.Proved, a.Reason)
	}

	// log-proof.jsonl: a line per event of events.csv, in its order, then
	// the nodes; with the leaves, they give the signed root.
	p := readLogProof(t, files["log-proof.jsonl"])
	if p.header["format"] != "doorledger-log-proof/1" || p.proof.Size != cp.Size || p.header["root"] != cp.Root.String() {
		t.Errorf("header %v", p.header)
	}
	var events []doorledger.UnlockEvent
	r.Events(func(ev *doorledger.UnlockEvent) error {
		events = append(events, *ev)
		return nil
	})
	if len(p.events) != len(events) {
		t.Fatalf("%d events in log-proof.jsonl, %d in the report", len(p.events), len(events))
	}
	for i, e := range p.events {
		enc, _ := auditlog.EncodeUnlock(&events[i])
		switch {
		case e.Unlock != events[i].ID:
			t.Fatalf("line %d is for unlock #%d, events.csv's row for #%d", i, e.Unlock, events[i].ID)
		case i == len(events)-2:
			if e.Index == nil || *e.Index < cp.Size || !strings.Contains(e.Reason, "after the report's signed head") {
				t.Errorf("event appended after the head: %+v", e)
			}
		case i == len(events)-1:
			if e.Index != nil || !strings.Contains(e.Reason, "not yet in the log") {
				t.Errorf("event not in the log: %+v", e)
			}
		case e.Index == nil || e.Reason != "" || e.Leaf != auditlog.LeafHash(enc).String()[:8]:
			t.Errorf("unlock #%d: %+v, want its leaf %s", e.Unlock, e, auditlog.LeafHash(enc))
		default:
			leaves = append(leaves, leaf{*e.Index, auditlog.LeafHash(enc)})
		}
		// An unregistered device's reference is in events.csv; a known
		// device's is not, and rides along.
		if events[i].DeviceID != 0 && events[i].DeviceRef != "" && e.Fields["device_ref"] != events[i].DeviceRef {
			t.Errorf("unlock #%d: fields %v, want its device_ref", e.Unlock, e.Fields)
		}
	}
	slices.SortFunc(leaves, func(a, b leaf) int { return int(a.index - b.index) })
	hashes := make([]doorledger.LogHash, len(leaves))
	for i, lf := range leaves {
		p.proof.Indexes = append(p.proof.Indexes, lf.index)
		hashes[i] = lf.hash
	}
	root, err := tlog.TreeHash(cp.Size, l)
	if err != nil {
		t.Fatal(err)
	}
	if err := auditlog.CheckInclusions(&p.proof, hashes, doorledger.LogHead{Size: cp.Size, Root: doorledger.LogHash(root)}); err != nil {
		t.Errorf("the proof does not verify: %v", err)
	}
	if n := len(p.proof.Nodes); n == 0 || n > len(leaves) {
		t.Errorf("%d nodes for %d leaves logged among others", n, len(leaves))
	}
}

// TestEvidenceBundle_ChangedEntry: an entry edited after it was logged gets
// no proof, and the line says it changed.
func TestEvidenceBundle_ChangedEntry(t *testing.T) {
	r, l := SampleBundleReport(t)
	r.AuditEntries[1].Detail = `{"reason":"(edited)"}`
	_, zr := MustBundle(t, r, l)
	lines := auditLines(t, zipFiles(t, zr)["audit.jsonl"])
	if a := lines[1]; a.Proved || !strings.Contains(a.Reason, "CHANGED after it was logged") {
		t.Errorf("changed entry: proved %v, reason %q", a.Proved, a.Reason)
	}
	if !lines[0].Proved {
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
		if a.Proved || !strings.Contains(a.Reason, "no signed head") {
			t.Errorf("audit #%d without a head: proved %v, reason %q", a.ID, a.Proved, a.Reason)
		}
	}
	if _, ok := files["log-proof.jsonl"]; ok {
		t.Error("log-proof.jsonl without a head")
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
		if calls == 4 { // events.csv hashed, the PDF's two passes, then events.csv written
			return SampleEvents(r, 299)(yield)
		}
		return sample(yield)
	}
	if err := reports.EvidenceBundle(context.Background(), io.Discard, r, l); err == nil || !strings.Contains(err.Error(), "events.csv changed while the bundle was written") {
		t.Errorf("events changed while written: %v", err)
	}
}
