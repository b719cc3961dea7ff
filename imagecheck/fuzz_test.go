package imagecheck_test

import (
	"bytes"
	"encoding/binary"
	"image"
	"image/jpeg"
	"image/png"
	"testing"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/imagecheck"
	"github.com/go-pdf/fpdf"
)

// FuzzSignature feeds arbitrary bytes to Signature. Whatever it accepts must
// be a PNG within the caps that decodes again, is not blank, comes back
// unchanged when validated a second time, and that fpdf (the consumer this
// package protects) reads without error. Rejections must be EINVALID.
//
// Seeds live in testdata/fuzz/FuzzSignature; run with
// go test -fuzz=FuzzSignature -fuzztime=20s ./imagecheck
func FuzzSignature(f *testing.F) {
	f.Add(MustPNG(f, SignatureImage(60, 20)))
	f.Add(MustPNG(f, ToPaletted(SignatureImage(30, 10))))
	f.Add(MustPNG(f, To16Bit(SignatureImage(30, 10))))
	f.Add(MustPNG(f, image.NewNRGBA(image.Rect(0, 0, 8, 8))))

	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := imagecheck.Signature(b)
		if err != nil {
			if got, want := doorledger.ErrorCode(err), doorledger.EINVALID; got != want {
				t.Fatalf("code = %q, want %q (err %v)", got, want, err)
			}
			return
		}
		if len(out) > imagecheck.MaxSignatureBytes {
			t.Fatalf("accepted %d bytes, over the cap", len(out))
		}
		cfg, err := png.DecodeConfig(bytes.NewReader(out))
		if err != nil {
			t.Fatalf("output header does not decode: %v", err)
		}
		if px := int64(cfg.Width) * int64(cfg.Height); px > imagecheck.MaxSignaturePixels {
			t.Fatalf("accepted %d×%d, over the pixel cap", cfg.Width, cfg.Height)
		}
		if _, err := png.Decode(bytes.NewReader(out)); err != nil {
			t.Fatalf("output does not decode: %v", err)
		}
		again, err := imagecheck.Signature(out)
		if err != nil {
			t.Fatalf("output rejected on second pass: %v", err)
		}
		if !bytes.Equal(again, out) {
			t.Fatal("second pass changed the bytes")
		}
		MustFPDFImage(t, out, "png")
	})
}

// FuzzPhoto feeds arbitrary bytes to Photo, with the same promises as
// FuzzSignature: accepted output matches its content type, decodes, respects
// the caps and is readable by fpdf.
func FuzzPhoto(f *testing.F) {
	f.Add(MustJPEG(f, Gradient(16, 8)))
	f.Add(WithEXIF(f, MustJPEG(f, Gradient(16, 8)), binary.BigEndian, 6, "GPS"))
	f.Add(MustPNG(f, Gradient(16, 8)))
	f.Add(MustPNG(f, ToGray(Gradient(16, 8))))

	f.Fuzz(func(t *testing.T, b []byte) {
		out, ct, err := imagecheck.Photo(b)
		if err != nil {
			if got, want := doorledger.ErrorCode(err), doorledger.EINVALID; got != want {
				t.Fatalf("code = %q, want %q (err %v)", got, want, err)
			}
			return
		}
		if len(out) > imagecheck.MaxPhotoBytes {
			t.Fatalf("accepted %d bytes, over the cap", len(out))
		}
		var cfg image.Config
		switch ct {
		case imagecheck.ContentTypeJPEG:
			if cfg, err = jpeg.DecodeConfig(bytes.NewReader(out)); err == nil {
				_, err = jpeg.Decode(bytes.NewReader(out))
			}
		case imagecheck.ContentTypePNG:
			if cfg, err = png.DecodeConfig(bytes.NewReader(out)); err == nil {
				_, err = png.Decode(bytes.NewReader(out))
			}
		default:
			t.Fatalf("content type = %q", ct)
		}
		if err != nil {
			t.Fatalf("output (%s) does not decode: %v", ct, err)
		}
		if px := int64(cfg.Width) * int64(cfg.Height); px > imagecheck.MaxPhotoPixels {
			t.Fatalf("accepted %d×%d, over the pixel cap", cfg.Width, cfg.Height)
		}
		if _, ct2, err := imagecheck.Photo(out); err != nil || ct2 != ct {
			t.Fatalf("second pass: %q, %v; want %q accepted", ct2, err, ct)
		}
		if ct == imagecheck.ContentTypeJPEG {
			MustFPDFImage(t, out, "jpg")
		} else {
			MustFPDFImage(t, out, "png")
		}
	})
}

// MustFPDFImage checks that fpdf registers the image without error.
func MustFPDFImage(tb testing.TB, b []byte, typ string) {
	tb.Helper()
	pdf := fpdf.New("P", "mm", "A4", "")
	pdf.RegisterImageOptionsReader("img", fpdf.ImageOptions{ImageType: typ}, bytes.NewReader(b))
	if err := pdf.Error(); err != nil {
		tb.Fatalf("fpdf rejects the output: %v", err)
	}
}
