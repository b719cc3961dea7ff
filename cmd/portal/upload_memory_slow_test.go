//go:build slow

package main

// The memory test of hostile uploads: the portal runs as a separate process,
// an installer posts hostile photos through the consent request form, eight at
// once, and the portal's peak resident memory (VmHWM) must stay under
// uploadRSSLimit while each upload gets a clear answer. Run with:
//
//	go test -tags slow -run SlowHostileUploads -v -count=1 ./cmd/portal/

import (
	"bytes"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/doorledger/doorledger/internal/imagetest"
)

const (
	uploadRSSLimit = 300 << 20 // the bar docs/security.md states (Uploads)
	uploadParallel = 8
)

func TestSlowHostileUploadsMemory(t *testing.T) {
	cp := newCrashPortal(t, t.TempDir())
	cp.start(t)
	cp.awaitReady(t)
	base := "http://" + cp.httpAddr
	pid := cp.cmd.Process.Pid
	inst, building, signerID := uploadSetup(t, base)
	t.Logf("portal pid %d ready; VmHWM after setup %d MB", pid, vmHWM(t, pid)>>20)

	// The probe's PNG: 6400×6250 (under the 40 megapixel cap), 16-bit RGBA,
	// all zero: ~300 KB that decode to 320 MB, and re-encoding copied it.
	hostile, err := imagetest.ZeroPNG(6400, 6250, imagetest.RGBA, 16, false)
	if err != nil {
		t.Fatal(err)
	}
	answers := postPhotosAtOnce(t, inst, building, signerID, "hostile", hostile)
	for i, a := range answers {
		if a.status != http.StatusUnprocessableEntity || !strings.Contains(a.body, "too large to process") {
			t.Errorf("hostile upload %d: %d, want 422 saying the photo is too large to process\n%.300s", i+1, a.status, a.body)
		}
	}
	peak := vmHWM(t, pid)
	t.Logf("%d hostile %d KB uploads at once: answers %v; VmHWM %d MB (limit %d MB)", uploadParallel, len(hostile)>>10, statuses(answers), peak>>20, uploadRSSLimit>>20)
	if peak > uploadRSSLimit {
		t.Errorf("peak resident memory %d MB after %d hostile uploads, want under %d MB", peak>>20, uploadParallel, uploadRSSLimit>>20)
	}

	// Large photos the caps allow — 8-bit RGBA, 4600×4600, ~85 MB each to
	// decode and re-encode — queue for the shared decoding budget: each is
	// accepted, or refused as busy (429) after waiting; memory stays bounded.
	large, err := imagetest.ZeroPNG(4600, 4600, imagetest.RGBA, 8, false)
	if err != nil {
		t.Fatal(err)
	}
	answers = postPhotosAtOnce(t, inst, building, signerID, "large", large)
	for i, a := range answers {
		switch {
		case a.status == http.StatusSeeOther:
		case a.status == http.StatusTooManyRequests && strings.Contains(a.body, "busy processing other images"):
		default:
			t.Errorf("large upload %d: %d, want 303 or 429 (busy)\n%.300s", i+1, a.status, a.body)
		}
	}
	peak = vmHWM(t, pid)
	t.Logf("%d large %d KB uploads at once: answers %v; VmHWM %d MB (limit %d MB)", uploadParallel, len(large)>>10, statuses(answers), peak>>20, uploadRSSLimit>>20)
	if peak > uploadRSSLimit {
		t.Errorf("peak resident memory %d MB after %d large uploads, want under %d MB", peak>>20, uploadParallel, uploadRSSLimit>>20)
	}
	cp.stop(t)
}

// uploadSetup makes a building with a signer and an installer granted on it,
// and returns the installer signed in, the building's path and the signer's id.
func uploadSetup(t *testing.T, base string) (*Client, string, string) {
	t.Helper()
	admin := NewClient(t, base)
	admin.MustLogin(testAdminEmail, crashAdminPass)
	status, building, body := admin.Post("/buildings/new", "/buildings", url.Values{"name": {"Upload Court"}, "address": {"1 Upload St"}, "timezone": {"UTC"}})
	if status != http.StatusSeeOther || !strings.HasPrefix(building, "/buildings/") {
		t.Fatalf("create building: %d %q\n%s", status, building, body)
	}
	admin.Post(building, building+"/signers", url.Values{"signer_name": {"Ana Owner"}, "signer_title": {"Owner"}, "signer_email": {"ana@example.com"}})
	user := url.Values{"name": {"Ivan Installer"}, "email": {"ivan@example.com"}, "role": {"installer"}, "company": {"FastKey"}, "password": {"correct horse battery"}}
	if status, _, body := admin.Post("/users/new", "/users", user); status != http.StatusSeeOther {
		t.Fatalf("create installer: %d\n%s", status, body)
	}
	_, body = admin.Get("/users")
	m := regexp.MustCompile(`href="/users/(\d+)">Ivan Installer`).FindStringSubmatch(body)
	if m == nil {
		t.Fatal("installer not listed")
	}
	admin.Post(building, building+"/grants", url.Values{"user_id": {m[1]}})
	inst := NewClient(t, base)
	inst.MustLogin("ivan@example.com", "correct horse battery")
	_, body = inst.Get(building + "/consents/new")
	sm := regexp.MustCompile(`<option value="(\d+)"[^>]*>Ana Owner`).FindStringSubmatch(body)
	if sm == nil {
		t.Fatalf("no signer on the consent form:\n%s", body)
	}
	return inst, building, sm[1]
}

type uploadAnswer struct {
	status int
	body   string
}

// postPhotosAtOnce posts uploadParallel consent requests, each with photo,
// through the installer's form, all at once, and returns the answers.
func postPhotosAtOnce(t *testing.T, inst *Client, building, signerID, name string, photo []byte) []uploadAnswer {
	t.Helper()
	token := inst.CSRF(building + "/consents/new")
	bodies, contentTypes := make([][]byte, uploadParallel), make([]string, uploadParallel)
	for i := range bodies {
		var b bytes.Buffer
		w := multipart.NewWriter(&b)
		for k, v := range map[string]string{"_csrf": token, "vendor": "Acme", "model": "K2", "serial": fmt.Sprintf("SN-%s-%d", name, i+1),
			"location": "lobby panel", "opens": "lobby door", "signer_id": signerID, "mode": "link"} {
			w.WriteField(k, v)
		}
		fw, _ := w.CreateFormFile("photos", name+".png")
		fw.Write(photo)
		w.Close()
		bodies[i], contentTypes[i] = b.Bytes(), w.FormDataContentType()
	}
	answers := make([]uploadAnswer, uploadParallel)
	errs := make([]error, uploadParallel)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range bodies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			req, _ := http.NewRequest(http.MethodPost, inst.base+building+"/consents", bytes.NewReader(bodies[i]))
			req.Header.Set("Content-Type", contentTypes[i])
			resp, err := inst.http.Do(req)
			if err != nil {
				errs[i] = err
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			answers[i] = uploadAnswer{resp.StatusCode, string(b)}
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("%s upload %d: %v", name, i+1, err)
		}
	}
	return answers
}

func statuses(answers []uploadAnswer) map[int]int {
	n := map[int]int{}
	for _, a := range answers {
		n[a.status]++
	}
	return n
}

// vmHWM returns the process's peak resident set size, from /proc.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^VmHWM:\s+(\d+) kB`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no VmHWM in /proc/%d/status", pid)
	}
	kb, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return kb << 10
}
