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
	"strconv"
	"strings"
	"sync"
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

// verifierBin is ./bundleverify built once for the package's tests.
var verifierBin struct {
	once sync.Once
	path string
	err  error
}

// unzipTo writes a bundle's files into a new directory.
func unzipTo(tb testing.TB, files map[string][]byte) string {
	tb.Helper()
	dir := tb.TempDir()
	for name, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	return dir
}

// runVerifier runs the bundle's verifier (built once) on the unzipped
// files and returns its output.
func runVerifier(tb testing.TB, files map[string][]byte, args ...string) (string, error) {
	tb.Helper()
	goBin := testtool.Require(tb, "go")
	verifierBin.once.Do(func() {
		dir, err := os.MkdirTemp("", "bundleverify")
		if err != nil {
			verifierBin.err = err
			return
		}
		verifierBin.path = filepath.Join(dir, "verify")
		if out, err := exec.Command(goBin, "build", "-o", verifierBin.path, "./bundleverify").CombinedOutput(); err != nil {
			verifierBin.err = fmt.Errorf("go build ./bundleverify: %v\n%s", err, out)
		}
	})
	if verifierBin.err != nil {
		tb.Fatal(verifierBin.err)
	}
	cmd := exec.Command(verifierBin.path, args...)
	cmd.Dir = unzipTo(tb, files)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestEvidenceBundle_VerifyOffline runs the bundle's verify.go as a board
// would, in the unzipped bundle, with `go run verify.go` and no module: no
// go.mod, no module cache, no proxy. It passes; a byte flipped in
// events.csv, in a proof or in a journal entry (the manifest rewritten to
// match, as a forger would) fails it, naming what.
func TestEvidenceBundle_VerifyOffline(t *testing.T) {
	goBin := testtool.Require(t, "go")
	r, l := SampleBundleReport(t)
	_, zr := MustBundle(t, r, l)
	files := zipFiles(t, zr)
	if src, _ := os.ReadFile(filepath.Join("bundleverify", "verify.go")); !bytes.Equal(files["verify.go"], src) {
		t.Fatal("verify.go in the bundle is not ./bundleverify/verify.go")
	}
	goRun := func(t *testing.T, files map[string][]byte) (string, error) {
		dir := unzipTo(t, files)
		cmd := exec.Command(goBin, "run", "verify.go", r.VerifierKey)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off", "GO111MODULE=on",
			"GOPATH="+t.TempDir(), "GOMODCACHE="+t.TempDir(), "GONOSUMDB=", "GOFLAGS=-mod=mod")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := goRun(t, files)
	if err != nil {
		t.Fatalf("go run verify.go, offline: %v\n%s", err, out)
	}
	for _, want := range []string{"files: 17 match the manifest", "a checkpoint of doorledger.test/log",
		fmt.Sprintf("%d entries", r.LogHead.Size), "audit entries: 2 to prove in the signed log, 2 without a proof",
		"unlock events: 298 proved in the signed log, 2 without a proof", "OK: the bundle verifies"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	// A byte flipped in events.csv, the manifest rewritten: the row is named.
	changed := cloneFiles(files)
	csvRows := bytes.Split(changed["events.csv"], []byte("\n"))
	row := csvRows[10]
	at := bytes.Index(row, []byte("AMZ-"))
	row[at+5] ^= 1 // the courier reference
	reManifest(t, changed)
	out, err = goRun(t, changed)
	if err == nil || !strings.Contains(out, "FAILED: events.csv line 11 (unlock #") || !strings.Contains(out, "the row hashes to") {
		t.Errorf("a changed row of events.csv: %v\n%s", err, out)
	}
}

func cloneFiles(files map[string][]byte) map[string][]byte {
	fs := map[string][]byte{}
	for k, v := range files {
		fs[k] = bytes.Clone(v)
	}
	return fs
}

// reManifest rewrites README.txt's manifest for the edited files, as a
// forger would.
func reManifest(tb testing.TB, fs map[string][]byte) {
	readme := string(fs["README.txt"])
	for name, sum := range manifest(tb, fs["README.txt"]) {
		now := sha256.Sum256(fs[name])
		readme = strings.ReplaceAll(readme, sum+"  "+name, hex.EncodeToString(now[:])+"  "+name)
	}
	fs["README.txt"] = []byte(readme)
}

// TestEvidenceBundle_VerifyProgram runs the bundle's own verify.go on the
// unzipped bundle: it passes, and it names a changed file, row, entry,
// proof line, and a proof against another head.
func TestEvidenceBundle_VerifyProgram(t *testing.T) {
	r, l := SampleBundleReport(t)
	_, zr := MustBundle(t, r, l)
	files := zipFiles(t, zr)

	t.Run("intact", func(t *testing.T) {
		out, err := runVerifier(t, files, r.VerifierKey)
		if err != nil {
			t.Fatalf("verify: %v\n%s", err, out)
		}
		for _, want := range []string{"files: 17 match the manifest", fmt.Sprintf("%d entries", r.LogHead.Size),
			"audit entries: 2 to prove in the signed log, 2 without a proof", "unlock events: 298 proved in the signed log, 2 without a proof",
			"OK: the bundle verifies"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
	})
	proofLine := func(fs map[string][]byte, prefix string) (int, []byte) {
		lines := bytes.Split(fs["log-proof.jsonl"], []byte("\n"))
		for i, l := range lines {
			if bytes.HasPrefix(l, []byte(prefix)) {
				return i, l
			}
		}
		t.Fatalf("no line %s", prefix)
		return 0, nil
	}
	flipHex := func(line []byte, key string) {
		at := bytes.Index(line, []byte(`"`+key+`":"`)) + len(key) + 4
		if line[at] == '0' {
			line[at] = '1'
		} else {
			line[at] = '0'
		}
	}
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
			reManifest(t, fs)
		}, "(audit #7001): the entry's fields are not the encoding the log holds"},
		{"changed terms", nil, func(fs map[string][]byte) {
			fs["consents/42-terms.txt"] = append(fs["consents/42-terms.txt"], ' ')
			reManifest(t, fs)
		}, "consents/42.json: the terms signed"},
		{"proof against another head", nil, func(fs map[string][]byte) {
			other := l.head(t, l.n) // signed by the same key, one entry later
			fs["log-head.txt"] = []byte(other.Note)
			reManifest(t, fs)
		}, "a proof for a tree of"},
		{"changed row", nil, func(fs map[string][]byte) {
			fs["events.csv"] = bytes.Replace(fs["events.csv"], []byte(",granted,"), []byte(",denied,"), 1)
			reManifest(t, fs)
		}, "events.csv line 2 (unlock #1000): the row hashes to"},
		{"changed node", nil, func(fs map[string][]byte) {
			_, line := proofLine(fs, `{"node":`)
			flipHex(line, "hash")
			reManifest(t, fs)
		}, "give the root"},
		{"changed leaf hash", nil, func(fs map[string][]byte) {
			_, line := proofLine(fs, `{"unlock":1005,`)
			flipHex(line, "leaf")
			reManifest(t, fs)
		}, "(unlock #1005): the row hashes to"},
		{"a node removed", nil, func(fs map[string][]byte) {
			i, _ := proofLine(fs, `{"node":`)
			lines := bytes.Split(fs["log-proof.jsonl"], []byte("\n"))
			fs["log-proof.jsonl"] = bytes.Join(append(lines[:i], lines[i+1:]...), []byte("\n"))
			reManifest(t, fs)
		}, "where the tree needs"},
		{"an event removed from both", nil, func(fs map[string][]byte) {
			i, _ := proofLine(fs, `{"unlock":1003,`)
			lines := bytes.Split(fs["log-proof.jsonl"], []byte("\n"))
			fs["log-proof.jsonl"] = bytes.Join(append(lines[:i], lines[i+1:]...), []byte("\n"))
			rows := bytes.Split(fs["events.csv"], []byte("\n"))
			fs["events.csv"] = bytes.Join(append(rows[:4], rows[5:]...), []byte("\n"))
			reManifest(t, fs)
		}, "where the tree needs"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fs := cloneFiles(files)
			if tt.edit != nil {
				tt.edit(fs)
			}
			out, err := runVerifier(t, fs, tt.args...)
			if err == nil {
				t.Fatalf("verify passed:\n%s", out)
			}
			if !strings.Contains(out, "FAILED: ") || !strings.Contains(out, tt.want) {
				t.Errorf("output lacks %q:\n%s", tt.want, out)
			}
		})
	}
	// The key printed before checkpoints (the same key under the name it
	// had then) is the key given too.
	old, err := l.key.Named("doorledger")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := runVerifier(t, files, old.VerifierKey()); err != nil {
		t.Errorf("with the key as printed before checkpoints: %v\n%s", err, out)
	}
}

// Environment of TestEvidenceBundleChild: what to write ("pdf" or
// "bundle"), of how many events (default benchEvents), logged among how
// many other buildings' events each (default 0: the building alone).
const (
	bundleChildEnv  = "DOORLEDGER_BUNDLE_CHILD"
	bundleEventsEnv = "DOORLEDGER_BUNDLE_EVENTS"
	bundleOthersEnv = "DOORLEDGER_BENCH_OTHERS"
)

// bundleChild runs TestEvidenceBundleChild in a fresh process (this test
// binary) and returns what it printed: seconds, CPU seconds, peak RSS (MB),
// file size (MB).
func bundleChild(b *testing.B, kind string, env ...string) [4]float64 {
	cmd := exec.Command(os.Args[0], "-test.run=^TestEvidenceBundleChild$", "-test.count=1", "-test.v", "-test.timeout=30m")
	cmd.Env = append(append(os.Environ(), bundleChildEnv+"="+kind), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		b.Fatalf("child: %v\n%s", err, out)
	}
	for line := range strings.Lines(string(out)) {
		if strings.HasPrefix(line, "BUNDLEFILE ") || strings.HasPrefix(line, "BUNDLELOG ") {
			b.Log(strings.TrimSpace(line))
		}
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "BUNDLECHILD "); ok {
			var f [4]float64
			if _, err := fmt.Sscanf(rest, "seconds=%g cpu_seconds=%g peak_mb=%g file_mb=%g", &f[0], &f[1], &f[2], &f[3]); err != nil {
				b.Fatalf("child: %q: %v", line, err)
			}
			b.Log(strings.TrimSpace(line))
			return f
		}
	}
	b.Fatalf("child printed no result:\n%s", out)
	return [4]float64{}
}

// BenchmarkEvidenceBundle100k makes the evidence bundle of 100,000 events
// and, in the same run, the PDF alone, each in a fresh child process
// (TestEvidenceBundleChild) so that its peak resident set (VmHWM) is its
// own. It reports each one's wall and CPU seconds, peak RSS and file size.
func BenchmarkEvidenceBundle100k(b *testing.B) {
	for b.Loop() {
		for _, kind := range []string{"pdf", "bundle"} {
			f := bundleChild(b, kind)
			b.ReportMetric(f[0], kind+"-s")
			b.ReportMetric(f[1], kind+"-CPU-s")
			b.ReportMetric(f[2], kind+"-peak-RSS-MB")
			b.ReportMetric(f[3], kind+"-file-MB")
		}
	}
}

// BenchmarkEvidenceBundle250k makes the evidence bundle of the largest
// report allowed, doorledger.MaxReportEvents (250,000) unlock events, each
// proved in the log, in a fresh child process, with each event logged after
// DOORLEDGER_BENCH_OTHERS (default 4) events of other buildings: the more
// buildings share the log, the more tree nodes the proof needs. It reports
// the bundle's size, which must stay under the verify page's upload limit
// (64 MB), and its time and peak RSS (the in-memory log the child builds
// first included).
func BenchmarkEvidenceBundle250k(b *testing.B) {
	others := os.Getenv(bundleOthersEnv)
	if others == "" {
		others = "4"
	}
	for b.Loop() {
		f := bundleChild(b, "bundle", bundleEventsEnv+"="+strconv.Itoa(doorledger.MaxReportEvents), bundleOthersEnv+"="+others)
		b.ReportMetric(f[0], "bundle-s")
		b.ReportMetric(f[1], "bundle-CPU-s")
		b.ReportMetric(f[2], "bundle-peak-RSS-MB")
		b.ReportMetric(f[3], "bundle-file-MB")
		if f[3] >= 64 {
			b.Errorf("the bundle of %d events is %.1f MB: over the verify page's 64 MB upload limit", doorledger.MaxReportEvents, f[3])
		}
	}
}

// TestEvidenceBundleChild writes a PDF or a bundle of DOORLEDGER_BUNDLE_EVENTS
// events to a file and says how long it took and the process's peak resident
// set. For a bundle, every event is in the log, each after
// DOORLEDGER_BENCH_OTHERS events of other buildings. It runs only as the
// benchmarks' child.
func TestEvidenceBundleChild(t *testing.T) {
	kind := os.Getenv(bundleChildEnv)
	if kind == "" {
		t.Skip("run by BenchmarkEvidenceBundle100k and BenchmarkEvidenceBundle250k")
	}
	n, others := benchEvents, 0
	if v := os.Getenv(bundleEventsEnv); v != "" {
		n, _ = strconv.Atoi(v)
	}
	if v := os.Getenv(bundleOthersEnv); v != "" {
		others, _ = strconv.Atoi(v)
	}
	r := SampleAuditReport(t)
	r.From, r.To = "2025-11-22", "2026-11-21"
	r.Events = SampleEvents(r, n)
	l := newMemLog(t)
	if kind == "bundle" {
		if err := r.Events(func(ev *doorledger.UnlockEvent) error {
			l.filler(t, others)
			enc, err := auditlog.EncodeUnlock(ev)
			if err != nil {
				return err
			}
			l.append(t, doorledger.LogKindUnlock, ev.ID, enc)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		r.LogHead = l.head(t, l.n)
		r.VerifierKey = l.key.VerifierKey()
	}
	path := filepath.Join(t.TempDir(), "out")
	f, err := os.Create(path)
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
	if kind == "bundle" {
		// What the bundle is made of: each file's size in the zip.
		zr, err := zip.OpenReader(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, zf := range zr.File {
			if zf.CompressedSize64 > 1<<20 {
				fmt.Printf("BUNDLEFILE %s %d bytes (%d unzipped)\n", zf.Name, zf.CompressedSize64, zf.UncompressedSize64)
			}
		}
		zr.Close()
		fmt.Printf("BUNDLELOG %d entries in the log, %d events of the building\n", l.n, n)
	}
	fmt.Printf("BUNDLECHILD seconds=%g cpu_seconds=%g peak_mb=%g file_mb=%g\n", elapsed.Seconds(), cpu.Seconds(), float64(peak)/1024, float64(w.bytes)/(1<<20))
}
