// Package imagecheck validates uploaded images before anything else reads them.
//
// Uploads are untrusted and some of them end up in fpdf, whose image parser is
// archived upstream and not hardened. So every image is identified by its bytes
// (never its name), its dimensions are read with DecodeConfig and held under a
// pixel cap, and the memory decoding it takes under a byte cap and a budget the
// process shares (memory.go), before a single pixel buffer is allocated; then
// it is decoded and re-encoded with the standard library. Only the re-encoded bytes leave this
// package: 8-bit PNG (gray, RGB or RGBA) or baseline JPEG, which fpdf reads
// without surprises, with every metadata chunk, trailing byte and EXIF block
// (GPS included) dropped.
//
// All rejections are doorledger.EINVALID errors whose messages can be shown to
// the person who uploaded the image, but ETOOMANY when the decoding budget
// stayed busy for DecodeWait: try again later.
package imagecheck

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/jpeg"
	"image/png"
	"io"
	"strings"

	"github.com/doorledger/doorledger"
)

// Limits. Byte limits apply to the upload and to the re-encoded result; pixel
// limits are checked from the header before decoding.
const (
	MaxSignatureBytes  = 1 << 20   // 1 MB
	MaxSignaturePixels = 4_000_000 // 4 megapixels
	MaxPhotoBytes      = 10 << 20  // 10 MB
	MaxPhotoPixels     = 40_000_000
	PhotoJPEGQuality   = 85
)

// Content types returned by Photo.
const (
	ContentTypePNG  = "image/png"
	ContentTypeJPEG = "image/jpeg"
)

const (
	pngMagic  = "\x89PNG\r\n\x1a\n"
	jpegMagic = "\xff\xd8\xff"

	dataURLPNGPrefix = "data:image/png;base64,"
)

// Signature validates a drawn signature (a PNG from signature_pad) and returns
// it re-encoded as a fresh 8-bit PNG. It rejects, with EINVALID, an empty
// upload, one over MaxSignatureBytes, anything that is not a PNG by its magic
// bytes, images over MaxSignaturePixels, undecodable data and blank signatures
// (every pixel transparent or white).
func Signature(b []byte) ([]byte, error) {
	switch {
	case len(b) == 0:
		return nil, doorledger.Errorf(doorledger.EINVALID, "The signature is empty. Please sign in the box.")
	case len(b) > MaxSignatureBytes:
		return nil, doorledger.Errorf(doorledger.EINVALID, "The signature image is larger than 1 MB.")
	case !bytes.HasPrefix(b, []byte(pngMagic)):
		return nil, doorledger.Errorf(doorledger.EINVALID, "The signature must be a PNG image.")
	}

	cfg, err := png.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		return nil, doorledger.Errorf(doorledger.EINVALID, "The signature image is damaged and cannot be read.")
	}
	if !withinPixels(cfg, MaxSignaturePixels) {
		return nil, doorledger.Errorf(doorledger.EINVALID, "The signature image is too large (over 4 megapixels).")
	}
	cost, ok := pngCost(b, cfg)
	if !ok {
		return nil, doorledger.Errorf(doorledger.EINVALID, "The signature image is damaged and cannot be read.")
	}
	if cost > MaxDecodeBytes {
		return nil, doorledger.Errorf(doorledger.EINVALID, "The signature image is too large to process (%s).", tooMuchMemory(cost))
	}
	release, err := reserveWaiting(cost)
	if err != nil {
		return nil, err
	}
	defer release()
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		return nil, doorledger.Errorf(doorledger.EINVALID, "The signature image is damaged and cannot be read.")
	}
	if isBlank(img) {
		return nil, doorledger.Errorf(doorledger.EINVALID, "The signature is blank. Please sign in the box.")
	}

	out, err := encodePNG(img)
	if err != nil {
		return nil, err
	}
	if len(out) > MaxSignatureBytes {
		return nil, doorledger.Errorf(doorledger.EINVALID, "The signature image is larger than 1 MB.")
	}
	return out, nil
}

// Photo validates an installation photo, JPEG or PNG by its bytes, and returns
// it re-encoded in the same format (JPEG at PhotoJPEGQuality, PNG as 8-bit PNG)
// with its content type. A JPEG's EXIF orientation is applied to the pixels
// before the EXIF block is dropped, so phone photos stay upright. It rejects,
// with EINVALID, an empty upload, one over MaxPhotoBytes (before or after
// re-encoding), other formats, images over MaxPhotoPixels and undecodable data.
func Photo(b []byte) (data []byte, contentType string, err error) {
	switch {
	case len(b) == 0:
		return nil, "", doorledger.Errorf(doorledger.EINVALID, "The photo is empty.")
	case len(b) > MaxPhotoBytes:
		return nil, "", doorledger.Errorf(doorledger.EINVALID, "The photo is larger than 10 MB.")
	}

	var (
		decodeConfig func(io.Reader) (image.Config, error)
		decode       func(io.Reader) (image.Image, error)
	)
	switch {
	case bytes.HasPrefix(b, []byte(jpegMagic)):
		contentType, decodeConfig, decode = ContentTypeJPEG, jpeg.DecodeConfig, jpeg.Decode
	case bytes.HasPrefix(b, []byte(pngMagic)):
		contentType, decodeConfig, decode = ContentTypePNG, png.DecodeConfig, png.Decode
	default:
		return nil, "", doorledger.Errorf(doorledger.EINVALID, "The photo must be a JPEG or PNG image.")
	}

	damaged := doorledger.Errorf(doorledger.EINVALID, "The photo is damaged and cannot be read.")
	cfg, err := decodeConfig(bytes.NewReader(b))
	if err != nil {
		return nil, "", damaged
	}
	if !withinPixels(cfg, MaxPhotoPixels) {
		return nil, "", doorledger.Errorf(doorledger.EINVALID, "The photo is too large (over 40 megapixels).")
	}
	orientation := 1
	var cost int64
	var ok bool
	if contentType == ContentTypeJPEG {
		orientation = exifOrientation(b)
		cost, ok = jpegCost(b, cfg, orientation)
	} else {
		cost, ok = pngCost(b, cfg)
	}
	if !ok {
		return nil, "", damaged
	}
	if cost > MaxDecodeBytes {
		return nil, "", doorledger.Errorf(doorledger.EINVALID, "The photo is too large to process (%s). Please upload a smaller photo, or one saved with 8-bit colour.", tooMuchMemory(cost))
	}
	release, err := reserveWaiting(cost)
	if err != nil {
		return nil, "", err
	}
	defer release()
	img, err := decode(bytes.NewReader(b))
	if err != nil {
		return nil, "", damaged
	}

	var out []byte
	if contentType == ContentTypeJPEG {
		img = orient(img, orientation)
		var buf bytes.Buffer
		if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: PhotoJPEGQuality}); err != nil {
			return nil, "", doorledger.Errorf(doorledger.EINVALID, "The photo cannot be processed.")
		}
		out = buf.Bytes()
	} else if out, err = encodePNG(img); err != nil {
		return nil, "", err
	}
	if len(out) > MaxPhotoBytes {
		return nil, "", doorledger.Errorf(doorledger.EINVALID, "The photo is larger than 10 MB once processed. Please upload a smaller photo.")
	}
	return out, contentType, nil
}

// DataURLPNG decodes a "data:image/png;base64,..." URL, as signature_pad's
// toDataURL produces, into the PNG bytes. A payload longer than the base64 of
// MaxSignatureBytes is refused before anything is decoded. The result is
// still untrusted: pass it to Signature.
func DataURLPNG(s string) ([]byte, error) {
	if len(s) < len(dataURLPNGPrefix) || !strings.EqualFold(s[:len(dataURLPNGPrefix)], dataURLPNGPrefix) {
		return nil, doorledger.Errorf(doorledger.EINVALID, "The signature must be sent as a PNG data URL.")
	}
	payload := s[len(dataURLPNGPrefix):]
	if payload == "" {
		return nil, doorledger.Errorf(doorledger.EINVALID, "The signature is empty. Please sign in the box.")
	}
	if len(payload) > base64.StdEncoding.EncodedLen(MaxSignatureBytes) {
		return nil, doorledger.Errorf(doorledger.EINVALID, "The signature image is larger than 1 MB.")
	}
	b, err := base64.StdEncoding.DecodeString(payload)
	if err != nil {
		return nil, doorledger.Errorf(doorledger.EINVALID, "The signature data is not valid base64.")
	}
	return b, nil
}

// tooMuchMemory says how much memory an image over MaxDecodeBytes would take.
func tooMuchMemory(cost int64) string {
	return fmt.Sprintf("it would take %d MB of memory to process; the limit is %d MB", (cost+1<<20-1)>>20, MaxDecodeBytes>>20)
}

// withinPixels reports whether cfg has positive dimensions whose product is at
// most max. The product is taken in int64 so huge sides cannot overflow.
func withinPixels(cfg image.Config, max int64) bool {
	w, h := int64(cfg.Width), int64(cfg.Height)
	return w > 0 && h > 0 && w <= max && h <= max && w*h <= max
}

// isBlank reports whether every pixel, composited over white, is white or
// nearly so: a fully transparent canvas, a white one, or faint anti-aliasing
// dust are all "no signature".
func isBlank(img image.Image) bool {
	const inkBelow = 0xf000 // about 240 of 255 after compositing over white
	bounds := img.Bounds()
	for y := bounds.Min.Y; y < bounds.Max.Y; y++ {
		for x := bounds.Min.X; x < bounds.Max.X; x++ {
			r, g, b, a := img.At(x, y).RGBA() // alpha-premultiplied, 16-bit
			over := 0xffff - a                // what white contributes through the transparency
			if r+over < inkBelow || g+over < inkBelow || b+over < inkBelow {
				return false
			}
		}
	}
	return true
}

// encodePNG re-encodes img as a PNG fpdf can read: 8-bit gray for gray
// sources, otherwise 8-bit RGB or RGBA (the encoder drops alpha when opaque).
// 16-bit and paletted sources are converted: fpdf rejects 16-bit PNGs, and
// fewer color types mean fewer of its code paths to trust.
func encodePNG(img image.Image) ([]byte, error) {
	switch img.(type) {
	case *image.Gray, *image.NRGBA, *image.RGBA:
		// Already 8-bit; encoding as is saves a full copy of the pixels.
	default:
		var dst draw.Image
		switch img.ColorModel() {
		case color.GrayModel, color.Gray16Model:
			dst = image.NewGray(img.Bounds())
		default:
			dst = image.NewNRGBA(img.Bounds())
		}
		draw.Draw(dst, dst.Bounds(), img, img.Bounds().Min, draw.Src)
		img = dst
	}

	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, doorledger.Errorf(doorledger.EINVALID, "The image cannot be processed.")
	}
	return buf.Bytes(), nil
}
