package imagecheck_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/imagecheck"
	"github.com/doorledger/doorledger/internal/imagetest"
)

// MustZeroPNG is imagetest.ZeroPNG, failing tb on error.
func MustZeroPNG(tb testing.TB, w, h uint32, colorType, depth byte, interlaced bool) []byte {
	tb.Helper()
	b, err := imagetest.ZeroPNG(w, h, colorType, depth, interlaced)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// A PNG of a few hundred kilobytes under the pixel cap whose
// 16-bit samples decode to over the byte cap (and whose re-encoding copies it
// again) is refused from its header, by the memory it would take, before
// anything is decoded; so is a progressive JPEG, whose decoder keeps 4 bytes
// of coefficients a sample, where a baseline one of the same size fits.
// Before, each was decoded. (The probe's own 6400×6250 16-bit RGBA PNG is
// posted to a running portal by TestSlowHostileUploadsMemory in cmd/portal.)
func TestPhotoRefusesByDecodedBytes(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"16-bit RGBA, 8.4 megapixels", MustZeroPNG(t, 3000, 2800, imagetest.RGBA, 16, false)},
		{"16-bit RGB, 9 megapixels", MustZeroPNG(t, 3000, 3000, imagetest.Truecolor, 16, false)},
		{"progressive JPEG, 20 megapixels", WithFrame(t, MustJPEG(t, Gradient(64, 48)), 0xc2, 5000, 4000)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if len(tc.in) > 200<<10 {
				t.Fatalf("the hostile image is %d bytes; want a small file", len(tc.in))
			}
			_, _, err := imagecheck.Photo(tc.in)
			if doorledger.ErrorCode(err) != doorledger.EINVALID || !strings.Contains(doorledger.ErrorMessage(err), "too large to process") {
				t.Fatalf("err = %v, want EINVALID: too large to process", err)
			}
			if msg := doorledger.ErrorMessage(err); !strings.Contains(msg, "the limit is 96 MB") {
				t.Errorf("message %q does not say the limit", msg)
			}
		})
	}
	// Baseline, the same 20 megapixels fit: it gets as far as decoding, and
	// its pixel data is not there.
	_, _, err := imagecheck.Photo(WithFrame(t, MustJPEG(t, Gradient(64, 48)), 0xc0, 5000, 4000))
	if got, want := doorledger.ErrorMessage(err), "The photo is damaged and cannot be read."; got != want {
		t.Fatalf("baseline JPEG, 20 megapixels: %v, want %q", err, want)
	}
}

// WithFrame returns a copy of a JPEG with its SOF0 marker replaced by marker
// (0xc2: progressive) and its dimensions by w×h.
func WithFrame(tb testing.TB, j []byte, marker byte, w, h uint16) []byte {
	tb.Helper()
	j = WithSOF(tb, j, w, h)
	i := bytes.Index(j, []byte{0xff, 0xc0})
	j[i+1] = marker
	return j
}
