package main

import (
	"archive/zip"
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/auditlog"
	"github.com/doorledger/doorledger/db/sqlite"
	"github.com/doorledger/doorledger/internal/testtool"
)

// runningWitness is `portal witness serve` run through run(), as a board
// member would run it, in its own state directory.
type runningWitness struct {
	dir, addr, key string
	stdout         *syncBuffer
	stop           context.CancelFunc
	done           chan error
}

// startWitness runs a witness of the log logKey on addr ("127.0.0.1:0": a
// free port) and waits until it listens.
func startWitness(t *testing.T, dir, name, addr, logKey string) *runningWitness {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &runningWitness{dir: dir, stdout: &syncBuffer{}, stop: cancel, done: make(chan error, 1)}
	go func() {
		w.done <- run(ctx, []string{"witness", "serve", "-dir", dir, "-name", name, "-addr", addr, "-log", logKey}, func(string) string { return "" }, w.stdout, io.Discard)
	}()
	t.Cleanup(w.Stop)
	re := regexp.MustCompile(`Witness listening on http://(\S+)`)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if m := re.FindStringSubmatch(w.stdout.String()); m != nil {
			w.addr, w.key = m[1], witnessKeyLine(w.stdout.String())
			return w
		}
		select {
		case err := <-w.done:
			t.Fatalf("witness exited: %v\n%s", err, w.stdout.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("witness did not start:\n%s", w.stdout.String())
		}
	}
}

func (w *runningWitness) Stop() {
	if w.stop != nil {
		w.stop()
		<-w.done
		w.stop = nil
	}
}

var witnessRowRE = regexp.MustCompile(`(?s)<tr id="witness-\d+"><td><strong>([^<]+)</strong>.*?</tr>`)

// witnessRows returns each witness's row of the witnesses page, by name.
func witnessRows(c *Client) map[string]string {
	_, body := c.Get("/witnesses")
	rows := map[string]string{}
	for _, m := range witnessRowRE.FindAllStringSubmatch(body, -1) {
		rows[m[1]] = m[0]
	}
	return rows
}

// awaitWitnesses polls the witnesses page until ok holds of its rows.
func awaitWitnesses(t *testing.T, c *Client, what string, ok func(rows map[string]string) bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		rows := witnessRows(c)
		if ok(rows) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("witnesses never %s:\n%v\nportal log:\n%s", what, rows, lastPortal.Stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// cosignedSize is the size a witness's row says it last cosigned.
func cosignedSize(row string) int64 {
	m := regexp.MustCompile(`<td>(\d+) entries<br`).FindStringSubmatch(row)
	if m == nil {
		return 0
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	return n
}

var headSizeRE = regexp.MustCompile(`id="head-size">(\d+)<`)

// reportOf requests a report, waits for it and downloads it; it returns
// the file, the report's page and the size of the head it covers.
func reportOf(t *testing.T, c *Client, building, format string) ([]byte, string, int64, string) {
	t.Helper()
	today := time.Now().UTC().Format("2006-01-02")
	rep := requestReport(t, c, building, format, today, today)
	page := awaitReport(t, c, rep)
	m := headSizeRE.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("%s: no head size on its page", rep)
	}
	size, _ := strconv.ParseInt(m[1], 10, 64)
	ext, ct := ".pdf", "application/pdf"
	switch format {
	case doorledger.ReportBundle:
		ext, ct = ".zip", "application/zip"
	case doorledger.ReportCSV:
		ext, ct = ".csv", "text/csv; charset=utf-8"
	}
	return download(t, c, rep, page, ext, ct), page, size, rep
}

// bundleVerifier builds the bundle's verify.go once per test.
func bundleVerifier(t *testing.T) string {
	t.Helper()
	goBin := testtool.Require(t, "go")
	bin := filepath.Join(t.TempDir(), "verify")
	if out, err := exec.Command(goBin, "build", "-o", bin, "../../reports/bundleverify").CombinedOutput(); err != nil {
		t.Fatalf("go build bundleverify: %v\n%s", err, out)
	}
	return bin
}

// unzipBundle writes a bundle's files into a new directory, as a board
// unzips it.
func unzipBundle(t *testing.T, zipped []byte) string {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(zipped), int64(len(zipped)))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(rc)
		rc.Close()
		p := filepath.Join(dir, filepath.FromSlash(f.Name))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// verifyBundle unzips a bundle and runs the verifier in it with the
// board's witness file.
func verifyBundle(t *testing.T, bin string, zipped []byte, boardFile string) (string, error) {
	t.Helper()
	cmd := exec.Command(bin, "-witnesses", boardFile)
	cmd.Dir = unzipBundle(t, zipped)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestEndToEndWitnesses: a portal and two witnesses (`portal witness
// serve`, each in its own state directory). Reports carry both
// cosignatures and verify offline against the board's keys; with one
// witness down a report says "cosigned by 1 of 2" and names it, and once it
// is back it catches up, the older report's page showing its later
// cosignature; then an attacker with the database and the log's key
// rewrites the tree and re-signs every head: both witnesses refuse, the
// admins are alerted loudly, and a report made afterwards fails
// verification naming the witnesses whose cosignature is missing.
func TestEndToEndWitnesses(t *testing.T) {
	dir := t.TempDir()
	p := MustStartPortal(t, dir)
	lastPortal = p
	admin := NewClient(t, p.URL)
	admin.MustLogin(testAdminEmail, p.AdminPass)
	status, loc, _ := admin.Post("/buildings/new", "/buildings", url.Values{"name": {"Witness Court"}, "address": {"1 Witness St"}, "timezone": {"UTC"}})
	if status != http.StatusSeeOther {
		t.Fatalf("create building: %d", status)
	}
	building := loc

	key, err := auditlog.LoadKey(filepath.Join(dir, auditlog.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	origin, err := auditlog.LoadOrigin(filepath.Join(dir, auditlog.OriginFile))
	if err != nil {
		t.Fatal(err)
	}
	if key, err = key.Named(origin); err != nil {
		t.Fatal(err)
	}
	alice := startWitness(t, t.TempDir(), "alice-witness", "127.0.0.1:0", key.VerifierKey())
	bob := startWitness(t, t.TempDir(), "bob-witness", "127.0.0.1:0", key.VerifierKey())
	for name, w := range map[string]*runningWitness{"Alice": alice, "Bob": bob} {
		if status, _, body := admin.Post("/witnesses", "/witnesses", url.Values{"name": {name}, "url": {"http://" + w.addr}, "vkey": {w.key}}); status != http.StatusSeeOther {
			t.Fatalf("add witness %s: %d\n%s", name, status, body)
		}
	}
	if status, _, body := admin.Post("/witnesses", "/witnesses/policy", url.Values{"k": {"2"}}); status != http.StatusSeeOther {
		t.Fatalf("policy: %d\n%s", status, body)
	}
	board := filepath.Join(t.TempDir(), "board-witnesses.txt")
	if err := os.WriteFile(board, []byte("# our witnesses, keys read to us by each\nk 2\nAlice "+alice.key+"\nBob "+bob.key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	verifier := bundleVerifier(t)

	// Both cosign; a report carries their two cosignatures and verifies
	// offline against the board's keys.
	_, _, first, _ := reportOf(t, admin, building, doorledger.ReportCSV) // signs a head
	awaitWitnesses(t, admin, "cosigned the first head", func(rows map[string]string) bool {
		return cosignedSize(rows["Alice"]) >= first && cosignedSize(rows["Bob"]) >= first
	})
	zipped, _, bundleHead, bundleReport := reportOf(t, admin, building, doorledger.ReportBundle)
	out, err := verifyBundle(t, verifier, zipped, board)
	if err != nil || !strings.Contains(out, "was cosigned by 2 of the 2 witnesses you trust: Alice at ") || !strings.Contains(out, "; Bob at ") {
		t.Fatalf("verify the first bundle: %v\n%s", err, out)
	}
	// Its own head is cosigned after it was issued: its page says so.
	awaitWitnesses(t, admin, "cosigned the bundle's head", func(rows map[string]string) bool {
		return cosignedSize(rows["Alice"]) >= bundleHead && cosignedSize(rows["Bob"]) >= bundleHead
	})
	if _, page := admin.Get(bundleReport); !strings.Contains(page, "vouched for by 2 of 2 witnesses") {
		t.Errorf("the bundle's page does not say both witnesses vouched:\n%s", page)
	}

	// Bob is down for a while; the policy asks for 1 of 2.
	if status, _, _ := admin.Post("/witnesses", "/witnesses/policy", url.Values{"k": {"1"}}); status != http.StatusSeeOther {
		t.Fatal("policy 1 of 2")
	}
	bobAddr := bob.addr
	bob.Stop()
	_, _, downHead, _ := reportOf(t, admin, building, doorledger.ReportCSV)
	awaitWitnesses(t, admin, "saw Alice cosign and Bob unreachable", func(rows map[string]string) bool {
		return cosignedSize(rows["Alice"]) >= downHead && strings.Contains(rows["Bob"], "unreachable")
	})
	pdf, _, pdfHead, downReport := reportOf(t, admin, building, doorledger.ReportPDF)
	text := strings.Join(strings.Fields(pdfText(t, pdf)), " ")
	if !strings.Contains(text, "cosigned by 1 of 2 witnesses (Alice") || !strings.Contains(text, "missing: Bob") {
		t.Errorf("the PDF made with Bob down does not say 1 of 2, Bob missing:\n%s", text)
	}
	awaitWitnesses(t, admin, "saw Alice cosign the PDF's head", func(rows map[string]string) bool {
		return cosignedSize(rows["Alice"]) >= pdfHead
	})
	if _, page := admin.Get(downReport); !strings.Contains(page, "vouched for by 1 of 2 witnesses") || !strings.Contains(page, "missing: Bob (") {
		t.Errorf("the report's page with Bob down:\n%s", page)
	}

	// Bob comes back on the same address and catches up; the older
	// report's page now shows his later cosignature.
	startWitness(t, bob.dir, "bob-witness", bobAddr, key.VerifierKey())
	_, _, backHead, _ := reportOf(t, admin, building, doorledger.ReportCSV)
	awaitWitnesses(t, admin, "saw Bob catch up", func(rows map[string]string) bool {
		return cosignedSize(rows["Bob"]) >= backHead && strings.Contains(rows["Bob"], "up to date")
	})
	if _, body := admin.Get(downReport); !strings.Contains(body, "vouched for by 2 of 2 witnesses") {
		t.Errorf("the older report's page does not show Bob's later cosignature:\n%s", body)
	}

	// The fork: an attacker with the database and the log's key rewrites
	// the tree and re-signs every head, the portal stopped meanwhile.
	pass := p.AdminPass
	p.Stop(t)
	d := sqlite.NewDB(filepath.Join(dir, "doorledger.db"))
	if err := d.Open(); err != nil {
		t.Fatal(err)
	}
	testtool.ForkLog(t, d.Writer(), key.Signer(), 3)
	d.Close()
	p = MustStartPortal(t, dir)
	lastPortal = p
	admin = NewClient(t, p.URL)
	admin.MustLogin(testAdminEmail, pass)
	zipped, page, forkHead, _ := reportOf(t, admin, building, doorledger.ReportBundle)
	awaitWitnesses(t, admin, "refused the forked log", func(rows map[string]string) bool {
		return strings.Contains(rows["Alice"], "REFUSED") && strings.Contains(rows["Bob"], "REFUSED")
	})
	_, body := admin.Get("/witnesses")
	for _, want := range []string{"Security: the witness Alice refused the log.", "Security: the witness Bob refused the log.", "(security event)"} {
		if !strings.Contains(body, want) {
			t.Errorf("witnesses page after the fork lacks %q", want)
		}
	}
	if _, body := admin.Get("/outbox"); strings.Count(body, "SECURITY: Witness") < 2 {
		t.Errorf("the admins were not mailed about both refusals:\n%s", body)
	}
	if !strings.Contains(page, "NOT WITNESSED") || !strings.Contains(page, "Alice (") || !strings.Contains(page, "Bob (") {
		t.Errorf("the report made after the fork (head %d) does not say it is not witnessed:\n%s", forkHead, page)
	}
	out, err = verifyBundle(t, verifier, zipped, board)
	if err == nil || !strings.Contains(out, "FAILED: witnesses:") || !strings.Contains(out, "missing: Alice, Bob") {
		t.Fatalf("the bundle made after the fork verifies, or does not name the missing witnesses: %v\n%s", err, out)
	}
}
