package imagecheck_test

import (
	"bytes"
	"compress/zlib"
	"encoding/base64"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/draw"
	"image/gif"
	"image/jpeg"
	"image/png"
	"strings"
	"testing"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/imagecheck"
)

func TestSignature_Rejects(t *testing.T) {
	sig := MustPNG(t, SignatureImage(300, 100))

	for _, tt := range []struct {
		name string
		in   []byte
		want string // the user-facing message
	}{
		{"Empty", nil, "The signature is empty. Please sign in the box."},
		{"OverOneMB", append(append([]byte{}, sig...), make([]byte, imagecheck.MaxSignatureBytes)...), "The signature image is larger than 1 MB."},
		{"JPEGBytes", MustJPEG(t, SignatureImage(300, 100)), "The signature must be a PNG image."},
		{"GIFBytes", MustGIF(t, SignatureImage(300, 100)), "The signature must be a PNG image."},
		{"Text", []byte("signature.png"), "The signature must be a PNG image."},
		{"SVGNamedPNG", []byte(`<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>`), "The signature must be a PNG image."},
		{"OverFourMegapixels", MustBombPNG(t, 2001, 2001), "The signature image is too large (over 4 megapixels)."},
		{"HugeDimensions", MustBombPNG(t, 100_000, 100_000), "The signature image is too large (over 4 megapixels)."},
		{"OverflowingDimensions", MustBombPNG(t, 1<<30, 1<<30), "The signature image is damaged and cannot be read."},
		{"ZeroWidth", WithIHDR(t, sig, 0, 100), "The signature image is damaged and cannot be read."},
		{"MagicOnly", []byte("\x89PNG\r\n\x1a\n"), "The signature image is damaged and cannot be read."},
		{"BadHeaderCRC", Corrupt(sig, 29), "The signature image is damaged and cannot be read."},
		{"Truncated", sig[:len(sig)/2], "The signature image is damaged and cannot be read."},
		{"BlankTransparent", MustPNG(t, image.NewNRGBA(image.Rect(0, 0, 300, 100))), "The signature is blank. Please sign in the box."},
		{"BlankWhite", MustPNG(t, Filled(300, 100, color.White)), "The signature is blank. Please sign in the box."},
		{"FaintDust", MustPNG(t, Filled(300, 100, color.NRGBA{0, 0, 0, 8})), "The signature is blank. Please sign in the box."},
		{"NearWhite", MustPNG(t, Filled(300, 100, color.Gray{250})), "The signature is blank. Please sign in the box."},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, err := imagecheck.Signature(tt.in)
			if err == nil {
				t.Fatalf("accepted (%d bytes out), want %q", len(out), tt.want)
			}
			if got, want := doorledger.ErrorCode(err), doorledger.EINVALID; got != want {
				t.Errorf("code = %q, want %q (err %v)", got, want, err)
			}
			if got, want := doorledger.ErrorMessage(err), tt.want; got != want {
				t.Errorf("message = %q, want %q", got, want)
			}
		})
	}
}

func TestSignature_Accepts(t *testing.T) {
	for _, tt := range []struct {
		name string
		img  image.Image
	}{
		{"TransparentInk", SignatureImage(600, 200)},
		{"OpaqueInk", OnWhite(SignatureImage(600, 200))},
		{"SixteenBit", To16Bit(SignatureImage(600, 200))},
		{"Paletted", ToPaletted(SignatureImage(600, 200))},
		{"Gray", ToGray(OnWhite(SignatureImage(600, 200)))},
		{"ExactlyFourMegapixels", SignatureImage(2000, 2000)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			in := MustPNG(t, tt.img)
			// Metadata and anything after IEND must not survive re-encoding.
			in = WithChunk(t, in, "tEXt", []byte("Comment\x00gps 40.7128,-74.0060"))
			in = append(in, "trailing <script>alert(1)</script>"...)

			out, err := imagecheck.Signature(in)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(out, []byte("tEXt")) || bytes.Contains(out, []byte("gps")) || bytes.Contains(out, []byte("script")) {
				t.Error("metadata or trailing bytes survived re-encoding")
			}
			if got, want := out[24], byte(8); got != want { // IHDR bit depth
				t.Errorf("bit depth = %d, want %d", got, want)
			}
			if got := out[25]; got == 3 { // IHDR colour type
				t.Error("output is paletted; want gray, RGB or RGBA")
			}
			img, err := png.Decode(bytes.NewReader(out))
			if err != nil {
				t.Fatalf("output does not decode: %v", err)
			}
			if got, want := img.Bounds(), tt.img.Bounds(); got != want {
				t.Errorf("bounds = %v, want %v", got, want)
			}
			// The stroke drawn by SignatureImage crosses the middle row.
			b := tt.img.Bounds()
			if _, _, _, a := img.At(b.Dx()/2, b.Dy()/2).RGBA(); a == 0 {
				t.Error("ink lost: middle pixel is transparent")
			}
		})
	}
}

func TestPhoto_Rejects(t *testing.T) {
	photo := MustJPEG(t, Gradient(64, 48))

	for _, tt := range []struct {
		name string
		in   []byte
		want string
	}{
		{"Empty", []byte{}, "The photo is empty."},
		{"OverTenMB", append(append([]byte{}, photo...), make([]byte, imagecheck.MaxPhotoBytes)...), "The photo is larger than 10 MB."},
		{"GIF", MustGIF(t, Gradient(64, 48)), "The photo must be a JPEG or PNG image."},
		{"WebP", []byte("RIFF\x24\x00\x00\x00WEBPVP8 "), "The photo must be a JPEG or PNG image."},
		{"HTML", []byte("<html><script>alert(1)</script></html>"), "The photo must be a JPEG or PNG image."},
		{"PNGBomb", MustBombPNG(t, 6400, 6400), "The photo is too large (over 40 megapixels)."},
		{"PNGHugeDimensions", MustBombPNG(t, 100_000, 100_000), "The photo is too large (over 40 megapixels)."},
		{"PNGOverflowingDimensions", MustBombPNG(t, 1<<31-1, 1<<31-1), "The photo is damaged and cannot be read."},
		{"JPEGHugeDimensions", WithSOF(t, photo, 65000, 65000), "The photo is too large (over 40 megapixels)."},
		{"JPEGMagicOnly", []byte("\xff\xd8\xff"), "The photo is damaged and cannot be read."},
		{"JPEGTruncatedHeader", photo[:40], "The photo is damaged and cannot be read."},
		{"PNGTruncated", MustPNG(t, Gradient(64, 48))[:100], "The photo is damaged and cannot be read."},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, ct, err := imagecheck.Photo(tt.in)
			if err == nil {
				t.Fatalf("accepted as %s (%d bytes), want %q", ct, len(out), tt.want)
			}
			if got, want := doorledger.ErrorCode(err), doorledger.EINVALID; got != want {
				t.Errorf("code = %q, want %q (err %v)", got, want, err)
			}
			if got, want := doorledger.ErrorMessage(err), tt.want; got != want {
				t.Errorf("message = %q, want %q", got, want)
			}
		})
	}
}

func TestPhoto_Accepts(t *testing.T) {
	t.Run("JPEG", func(t *testing.T) {
		in := WithEXIF(t, MustJPEG(t, Gradient(64, 48)), binary.LittleEndian, 1, "GPS 40.7128N 74.0060W")
		out, ct, err := imagecheck.Photo(in)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := ct, "image/jpeg"; got != want {
			t.Errorf("content type = %q, want %q", got, want)
		}
		if bytes.Contains(out, []byte("Exif")) || bytes.Contains(out, []byte("GPS")) {
			t.Error("EXIF survived re-encoding")
		}
		cfg, err := jpeg.DecodeConfig(bytes.NewReader(out))
		if err != nil {
			t.Fatalf("output does not decode: %v", err)
		}
		if got, want := [2]int{cfg.Width, cfg.Height}, [2]int{64, 48}; got != want {
			t.Errorf("size = %v, want %v", got, want)
		}
	})

	t.Run("PNG", func(t *testing.T) {
		in := WithChunk(t, MustPNG(t, To16Bit(Gradient(64, 48))), "tEXt", []byte("Comment\x00secret"))
		out, ct, err := imagecheck.Photo(in)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := ct, "image/png"; got != want {
			t.Errorf("content type = %q, want %q", got, want)
		}
		if bytes.Contains(out, []byte("secret")) {
			t.Error("tEXt chunk survived re-encoding")
		}
		if got, want := out[24], byte(8); got != want {
			t.Errorf("bit depth = %d, want %d", got, want)
		}
		if _, err := png.Decode(bytes.NewReader(out)); err != nil {
			t.Fatalf("output does not decode: %v", err)
		}
	})
}

// TestPhoto_Orientation checks that EXIF orientation is applied to the pixels,
// since re-encoding drops the tag that phones rely on.
func TestPhoto_Orientation(t *testing.T) {
	// 40×20: red left half, blue right half.
	src := image.NewRGBA(image.Rect(0, 0, 40, 20))
	draw.Draw(src, image.Rect(0, 0, 20, 20), image.NewUniform(color.RGBA{255, 0, 0, 255}), image.Point{}, draw.Src)
	draw.Draw(src, image.Rect(20, 0, 40, 20), image.NewUniform(color.RGBA{0, 0, 255, 255}), image.Point{}, draw.Src)
	red, blue := color.RGBA{255, 0, 0, 255}, color.RGBA{0, 0, 255, 255}

	for _, tt := range []struct {
		name   string
		order  binary.ByteOrder
		o      uint16
		w, h   int
		probes map[image.Point]color.RGBA
	}{
		{"None", binary.BigEndian, 1, 40, 20, map[image.Point]color.RGBA{{5, 10}: red, {35, 10}: blue}},
		{"Mirrored", binary.LittleEndian, 2, 40, 20, map[image.Point]color.RGBA{{5, 10}: blue, {35, 10}: red}},
		{"Rotated180", binary.BigEndian, 3, 40, 20, map[image.Point]color.RGBA{{5, 10}: blue, {35, 10}: red}},
		{"Rotate90CW", binary.LittleEndian, 6, 20, 40, map[image.Point]color.RGBA{{10, 5}: red, {10, 35}: blue}},
		{"Rotate90CCW", binary.BigEndian, 8, 20, 40, map[image.Point]color.RGBA{{10, 5}: blue, {10, 35}: red}},
		{"Transposed", binary.BigEndian, 5, 20, 40, map[image.Point]color.RGBA{{10, 5}: red, {10, 35}: blue}},
		{"Transversed", binary.LittleEndian, 7, 20, 40, map[image.Point]color.RGBA{{10, 5}: blue, {10, 35}: red}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, _, err := imagecheck.Photo(WithEXIF(t, MustJPEG(t, src), tt.order, tt.o, ""))
			if err != nil {
				t.Fatal(err)
			}
			img, err := jpeg.Decode(bytes.NewReader(out))
			if err != nil {
				t.Fatal(err)
			}
			if got, want := img.Bounds().Size(), image.Pt(tt.w, tt.h); got != want {
				t.Errorf("size = %v, want %v", got, want)
			}
			for p, want := range tt.probes {
				if got := color.RGBAModel.Convert(img.At(p.X, p.Y)).(color.RGBA); !near(got, want) {
					t.Errorf("pixel %v = %v, want about %v", p, got, want)
				}
			}
		})
	}
}

// TestPhoto_MalformedEXIF checks that a broken EXIF block is ignored, not fatal.
func TestPhoto_MalformedEXIF(t *testing.T) {
	jpg := MustJPEG(t, Gradient(32, 16))
	for name, payload := range map[string][]byte{
		"Short":          []byte("Exif\x00\x00II"),
		"BadMagic":       []byte("Exif\x00\x00II\x2b\x00\x08\x00\x00\x00"),
		"IFDPastEnd":     []byte("Exif\x00\x00MM\x00\x2a\xff\xff\xff\xf0"),
		"EntriesPastEnd": []byte("Exif\x00\x00II\x2a\x00\x08\x00\x00\x00\xff\xff"),
		"WrongType":      []byte("Exif\x00\x00II\x2a\x00\x08\x00\x00\x00\x01\x00\x12\x01\x04\x00\x01\x00\x00\x00\x06\x00\x00\x00"),
		"OutOfRange":     []byte("Exif\x00\x00II\x2a\x00\x08\x00\x00\x00\x01\x00\x12\x01\x03\x00\x01\x00\x00\x00\x09\x00\x00\x00"),
	} {
		t.Run(name, func(t *testing.T) {
			out, _, err := imagecheck.Photo(WithAPP1(jpg, payload))
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := jpeg.DecodeConfig(bytes.NewReader(out))
			if err != nil {
				t.Fatal(err)
			}
			if got, want := image.Pt(cfg.Width, cfg.Height), image.Pt(32, 16); got != want {
				t.Errorf("size = %v, want %v (orientation applied from a malformed block)", got, want)
			}
		})
	}
}

func TestDataURLPNG(t *testing.T) {
	sig := MustPNG(t, SignatureImage(300, 100))
	b64 := base64.StdEncoding.EncodeToString(sig)

	t.Run("OK", func(t *testing.T) {
		for _, prefix := range []string{"data:image/png;base64,", "DATA:image/PNG;Base64,"} {
			got, err := imagecheck.DataURLPNG(prefix + b64)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, sig) {
				t.Errorf("%s: decoded bytes differ from the PNG", prefix)
			}
		}
	})

	for _, tt := range []struct {
		name string
		in   string
		want string
	}{
		{"Empty", "", "The signature must be sent as a PNG data URL."},
		{"JPEGDataURL", "data:image/jpeg;base64," + b64, "The signature must be sent as a PNG data URL."},
		{"SVGDataURL", "data:image/svg+xml;base64,PHN2Zz48L3N2Zz4=", "The signature must be sent as a PNG data URL."},
		{"NoBase64", "data:image/png," + string(sig), "The signature must be sent as a PNG data URL."},
		{"EmptyPayload", "data:image/png;base64,", "The signature is empty. Please sign in the box."},
		{"TooLong", "data:image/png;base64," + strings.Repeat("A", base64.StdEncoding.EncodedLen(imagecheck.MaxSignatureBytes)+4), "The signature image is larger than 1 MB."},
		{"BadBase64", "data:image/png;base64,@@@@", "The signature data is not valid base64."},
		{"MissingPadding", "data:image/png;base64,iVBORw0KGg", "The signature data is not valid base64."},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := imagecheck.DataURLPNG(tt.in)
			if got, want := doorledger.ErrorCode(err), doorledger.EINVALID; got != want {
				t.Fatalf("code = %q, want %q (err %v)", got, want, err)
			}
			if got, want := doorledger.ErrorMessage(err), tt.want; got != want {
				t.Errorf("message = %q, want %q", got, want)
			}
		})
	}
}

// TestMustBombPNG checks that the test's bomb is the real thing: a small file
// that decodes to the full claimed size.
func TestMustBombPNG(t *testing.T) {
	b := MustBombPNG(t, 2001, 2001)
	if got, max := len(b), 50<<10; got > max {
		t.Errorf("bomb is %d bytes, want under %d", got, max)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := img.Bounds().Size(), image.Pt(2001, 2001); got != want {
		t.Errorf("size = %v, want %v", got, want)
	}
}

// near reports whether two colours are within JPEG's lossiness of each other.
func near(a, b color.RGBA) bool {
	d := func(x, y uint8) int {
		if x > y {
			return int(x - y)
		}
		return int(y - x)
	}
	return d(a.R, b.R) < 40 && d(a.G, b.G) < 40 && d(a.B, b.B) < 40
}

// SignatureImage returns a transparent canvas with a dark stroke across the
// middle, like signature_pad's output.
func SignatureImage(w, h int) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	ink := color.NRGBA{0x10, 0x10, 0x40, 0xff}
	for x := w / 10; x < w-w/10; x++ {
		y := h/2 + (x%40-20)*h/200
		for dy := -2; dy <= 2; dy++ {
			img.SetNRGBA(x, y+dy, ink)
		}
		img.SetNRGBA(x, h/2, ink)
	}
	return img
}

// Gradient returns an opaque test photo.
func Gradient(w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.SetRGBA(x, y, color.RGBA{uint8(x * 255 / w), uint8(y * 255 / h), 128, 255})
		}
	}
	return img
}

// Filled returns a w×h image of one colour.
func Filled(w, h int, c color.Color) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	draw.Draw(img, img.Bounds(), image.NewUniform(c), image.Point{}, draw.Src)
	return img
}

// OnWhite composites img over an opaque white background.
func OnWhite(img image.Image) *image.RGBA {
	dst := image.NewRGBA(img.Bounds())
	draw.Draw(dst, dst.Bounds(), image.White, image.Point{}, draw.Src)
	draw.Draw(dst, dst.Bounds(), img, img.Bounds().Min, draw.Over)
	return dst
}

// To16Bit converts img so that the PNG encoder writes 16-bit samples.
func To16Bit(img image.Image) *image.NRGBA64 {
	dst := image.NewNRGBA64(img.Bounds())
	draw.Draw(dst, dst.Bounds(), img, img.Bounds().Min, draw.Src)
	return dst
}

// ToPaletted converts img to a small palette with transparency.
func ToPaletted(img image.Image) *image.Paletted {
	dst := image.NewPaletted(img.Bounds(), color.Palette{color.NRGBA{}, color.NRGBA{0x10, 0x10, 0x40, 0xff}, color.White})
	draw.Draw(dst, dst.Bounds(), img, img.Bounds().Min, draw.Src)
	return dst
}

// ToGray converts img to 8-bit gray.
func ToGray(img image.Image) *image.Gray {
	dst := image.NewGray(img.Bounds())
	draw.Draw(dst, dst.Bounds(), img, img.Bounds().Min, draw.Src)
	return dst
}

// MustPNG encodes img as PNG.
func MustPNG(tb testing.TB, img image.Image) []byte {
	tb.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// MustJPEG encodes img as JPEG.
func MustJPEG(tb testing.TB, img image.Image) []byte {
	tb.Helper()
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90}); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// MustGIF encodes img as GIF.
func MustGIF(tb testing.TB, img image.Image) []byte {
	tb.Helper()
	var buf bytes.Buffer
	if err := gif.Encode(&buf, img, nil); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// MustBombPNG returns a valid 8-bit gray PNG of w×h black pixels: a
// decompression bomb, a few kilobytes that inflate to w×h bytes. For sizes too
// large to compress in a test, the image data holds only the first rows (so the
// file is truncated, but its header still claims w×h).
func MustBombPNG(tb testing.TB, w, h uint32) []byte {
	tb.Helper()
	var out bytes.Buffer
	out.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 0 // 8-bit gray
	writeChunk(&out, "IHDR", ihdr)

	rows := h
	if uint64(w)*uint64(h) > 64<<20 {
		rows = 1
	}
	var idat bytes.Buffer
	zw, err := zlib.NewWriterLevel(&idat, zlib.BestSpeed)
	if err != nil {
		tb.Fatal(err)
	}
	if uint64(w) < 1<<28 {
		row := make([]byte, 1+w) // filter byte + samples, all zero
		for y := uint32(0); y < rows; y++ {
			if _, err := zw.Write(row); err != nil {
				tb.Fatal(err)
			}
		}
	}
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	writeChunk(&out, "IDAT", idat.Bytes())
	writeChunk(&out, "IEND", nil)
	if rows == h && out.Len() > 200<<10 {
		tb.Fatalf("bomb is %d bytes; want a small file", out.Len())
	}
	return out.Bytes()
}

// WithIHDR returns a copy of a PNG with its IHDR width and height replaced and
// the chunk's CRC fixed, so only the dimensions are wrong.
func WithIHDR(tb testing.TB, p []byte, w, h uint32) []byte {
	tb.Helper()
	if string(p[12:16]) != "IHDR" {
		tb.Fatal("first chunk is not IHDR")
	}
	p = append([]byte{}, p...)
	binary.BigEndian.PutUint32(p[16:], w)
	binary.BigEndian.PutUint32(p[20:], h)
	binary.BigEndian.PutUint32(p[29:], crc32.ChecksumIEEE(p[12:29]))
	return p
}

// WithChunk returns a copy of a PNG with an extra chunk after IHDR.
func WithChunk(tb testing.TB, p []byte, typ string, data []byte) []byte {
	tb.Helper()
	const afterIHDR = 8 + 4 + 4 + 13 + 4
	if string(p[12:16]) != "IHDR" {
		tb.Fatal("first chunk is not IHDR")
	}
	var out bytes.Buffer
	out.Write(p[:afterIHDR])
	writeChunk(&out, typ, data)
	out.Write(p[afterIHDR:])
	return out.Bytes()
}

// WithSOF returns a copy of a JPEG with the dimensions in its SOF0 header
// replaced; JPEG has no checksum, so this is all a bomb needs.
func WithSOF(tb testing.TB, j []byte, w, h uint16) []byte {
	tb.Helper()
	i := bytes.Index(j, []byte{0xff, 0xc0})
	if i < 0 {
		tb.Fatal("no SOF0 marker")
	}
	j = append([]byte{}, j...)
	binary.BigEndian.PutUint16(j[i+5:], h)
	binary.BigEndian.PutUint16(j[i+7:], w)
	return j
}

// WithEXIF returns a copy of a JPEG with an EXIF APP1 segment holding an
// orientation tag and, if note is not empty, an ImageDescription-like string.
func WithEXIF(tb testing.TB, j []byte, order binary.ByteOrder, orientation uint16, note string) []byte {
	tb.Helper()
	var t bytes.Buffer
	t.WriteString("Exif\x00\x00")
	if order == binary.LittleEndian {
		t.WriteString("II")
	} else {
		t.WriteString("MM")
	}
	u16 := func(v uint16) { b := make([]byte, 2); order.PutUint16(b, v); t.Write(b) }
	u32 := func(v uint32) { b := make([]byte, 4); order.PutUint32(b, v); t.Write(b) }
	u16(42)
	u32(8) // IFD0 right after the header
	u16(1) // one entry
	u16(0x0112)
	u16(3) // SHORT
	u32(1)
	u16(orientation)
	u16(0)
	u32(0) // no next IFD
	t.WriteString(note)
	return WithAPP1(j, t.Bytes())
}

// WithAPP1 returns a copy of a JPEG with an APP1 segment right after SOI.
func WithAPP1(j []byte, payload []byte) []byte {
	var out bytes.Buffer
	out.Write(j[:2])
	out.Write([]byte{0xff, 0xe1})
	n := make([]byte, 2)
	binary.BigEndian.PutUint16(n, uint16(len(payload)+2))
	out.Write(n)
	out.Write(payload)
	out.Write(j[2:])
	return out.Bytes()
}

// Corrupt returns a copy of b with the byte at i flipped.
func Corrupt(b []byte, i int) []byte {
	b = append([]byte{}, b...)
	b[i] ^= 0xff
	return b
}

func writeChunk(w *bytes.Buffer, typ string, data []byte) {
	n := make([]byte, 4)
	binary.BigEndian.PutUint32(n, uint32(len(data)))
	w.Write(n)
	crc := crc32.NewIEEE()
	crc.Write([]byte(typ))
	crc.Write(data)
	w.WriteString(typ)
	w.Write(data)
	binary.BigEndian.PutUint32(n, crc.Sum32())
	w.Write(n)
}
