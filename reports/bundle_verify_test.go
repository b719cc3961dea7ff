package reports_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/doorledger/doorledger/internal/testtool"
)

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
