package imagecheck

import (
	"bytes"
	"context"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"runtime"
	"runtime/debug"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/internal/imagetest"
)

// pngHead returns the chunks of a PNG up to an empty IDAT: enough for
// pngCost, which reads nothing after it.
func pngHead(colorType, depth byte, interlaced, trns bool) []byte {
	var b bytes.Buffer
	b.WriteString(pngMagic)
	chunk := func(typ string, data []byte) {
		binary.Write(&b, binary.BigEndian, uint32(len(data)))
		b.WriteString(typ)
		b.Write(data)
		binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(append([]byte(typ), data...)))
	}
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], 1000)
	binary.BigEndian.PutUint32(ihdr[4:], 1000)
	ihdr[8], ihdr[9] = depth, colorType
	if interlaced {
		ihdr[12] = 1
	}
	chunk("IHDR", ihdr)
	if trns {
		chunk("tRNS", []byte{0, 0})
	}
	chunk("IDAT", nil)
	return b.Bytes()
}

// The cost of a PNG is its decoded form's bytes (by colour type, and
// transparency, which makes the decoder use NRGBA), the copy encodePNG makes
// of 16-bit and paletted images, and half the image more when interlaced;
// plus the decoder's rows and state, and twice the file for the re-encoded
// bytes.
func TestPNGCost(t *testing.T) {
	const px = 1000 * 1000
	for _, tc := range []struct {
		name       string
		model      color.Model
		colorType  byte
		depth      byte
		interlaced bool
		trns       bool
		perPixel   float64
	}{
		{"gray", color.GrayModel, 0, 8, false, false, 1},
		{"gray, transparent colour", color.GrayModel, 0, 8, false, true, 4},
		{"gray 16-bit", color.Gray16Model, 0, 16, false, false, 2 + 1},
		{"gray 16-bit, transparent colour", color.Gray16Model, 0, 16, false, true, 8 + 4},
		{"RGB", color.RGBAModel, 2, 8, false, false, 4},
		{"RGBA", color.NRGBAModel, 6, 8, false, false, 4},
		{"RGBA interlaced", color.NRGBAModel, 6, 8, true, false, 4 + 2},
		{"RGB 16-bit", color.RGBA64Model, 2, 16, false, false, 8 + 4},
		{"RGBA 16-bit", color.NRGBA64Model, 6, 16, false, false, 8 + 4},
		{"RGBA 16-bit interlaced", color.NRGBA64Model, 6, 16, true, false, 8 + 4 + 4},
		{"paletted", color.Palette{color.Black, color.White}, 3, 8, false, false, 1 + 4},
	} {
		b := pngHead(tc.colorType, tc.depth, tc.interlaced, tc.trns)
		cost, ok := pngCost(b, image.Config{ColorModel: tc.model, Width: 1000, Height: 1000})
		if want := int64(tc.perPixel*px) + 2*(1+8*1000) + decoderState + 2*int64(len(b)); !ok || cost != want {
			t.Errorf("%s: cost %d (ok %v), want %d", tc.name, cost, ok, want)
		}
	}
	if _, ok := pngCost([]byte(pngMagic+"\x00\x00\x00\x0dIHDR"), image.Config{ColorModel: color.GrayModel, Width: 1, Height: 1}); ok {
		t.Error("a truncated header has a cost")
	}
}

// The cost of a JPEG is each component's samples padded to whole MCUs, four
// bytes a sample more when progressive, and the upright copy an orientation
// needs; plus the decoder's state and twice the file.
func TestJPEGCost(t *testing.T) {
	var colour, gray bytes.Buffer
	jpeg.Encode(&colour, image.NewRGBA(image.Rect(0, 0, 1000, 1000)), nil) // 4:2:0
	jpeg.Encode(&gray, image.NewGray(image.Rect(0, 0, 1000, 1000)), nil)
	const yuv420 = 64*2*2*63*63 + 2*64*63*63 // 16×16 MCUs: 63 across and down
	const y = 8 * 125 * 8 * 125
	progressive := bytes.Replace(colour.Bytes(), []byte{0xff, 0xc0}, []byte{0xff, 0xc2}, 1)
	for _, tc := range []struct {
		name        string
		b           []byte
		orientation int
		want        int64
	}{
		{"4:2:0", colour.Bytes(), 1, yuv420},
		{"4:2:0 turned", colour.Bytes(), 6, yuv420 + 4*1000*1000},
		{"4:2:0 progressive", progressive, 1, yuv420 * 5},
		{"gray", gray.Bytes(), 1, y},
		{"gray turned", gray.Bytes(), 8, y + 1000*1000},
	} {
		cfg, err := jpeg.DecodeConfig(bytes.NewReader(tc.b))
		if err != nil {
			t.Fatal(err)
		}
		cost, ok := jpegCost(tc.b, cfg, tc.orientation)
		if want := tc.want + decoderState + 2*int64(len(tc.b)); !ok || cost != want {
			t.Errorf("%s: cost %d (ok %v), want %d", tc.name, cost, ok, want)
		}
	}
}

// The standard decoders allocate no more than the cost says: measured with
// the collector off, around Decode alone.
func TestCostCoversDecoder(t *testing.T) {
	rgba := image.NewNRGBA(image.Rect(0, 0, 700, 500))
	for i := range rgba.Pix {
		rgba.Pix[i] = byte(i * 7)
	}
	enc := func(img image.Image) []byte {
		var b bytes.Buffer
		if err := png.Encode(&b, img); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	big := image.NewNRGBA64(rgba.Rect)
	pal := image.NewPaletted(rgba.Rect, color.Palette{color.Black, color.White})
	var jb bytes.Buffer
	jpeg.Encode(&jb, rgba, nil)
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"PNG RGBA", enc(rgba)},
		{"PNG RGBA 16-bit", enc(big)},
		{"PNG paletted", enc(pal)},
		{"JPEG", jb.Bytes()},
	} {
		var cost int64
		var decode func() error
		if bytes.HasPrefix(tc.b, []byte(pngMagic)) {
			cfg, _ := png.DecodeConfig(bytes.NewReader(tc.b))
			cost, _ = pngCost(tc.b, cfg)
			decode = func() error { _, err := png.Decode(bytes.NewReader(tc.b)); return err }
		} else {
			cfg, _ := jpeg.DecodeConfig(bytes.NewReader(tc.b))
			cost, _ = jpegCost(tc.b, cfg, 1)
			decode = func() error { _, err := jpeg.Decode(bytes.NewReader(tc.b)); return err }
		}
		got := allocated(t, decode)
		if got > uint64(cost) {
			t.Errorf("%s: decoding allocated %d bytes, the cost says %d", tc.name, got, cost)
		}
		t.Logf("%s: decoding allocated %d bytes, the cost says %d", tc.name, got, cost)
	}
}

// allocated returns the bytes f allocates, with the collector off.
func allocated(t *testing.T, f func() error) uint64 {
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if err := f(); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// An image that cannot get its share of the decoding budget in time is
// refused with ETOOMANY; once the budget is free again it goes through.
func TestDecodingBudget(t *testing.T) {
	release, err := reserve(context.Background(), MaxDecodingBytes-MaxDecodeBytes/2)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := reserve(ctx, MaxDecodeBytes); doorledger.ErrorCode(err) != doorledger.ETOOMANY {
		t.Fatalf("over the budget: %v, want ETOOMANY", err)
	}
	small, err := reserve(context.Background(), MaxDecodeBytes/4)
	if err != nil {
		t.Fatalf("within the budget: %v", err)
	}
	small()
	release()
	again, err := reserve(context.Background(), MaxDecodeBytes)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	again()
}

// TestDecodedMemoryCollectedBeforeRelease: a large decode's memory is
// collected before its share of the budget is given back, so the next
// decode the budget lets in does not allocate beside the last one's garbage.
// With the collector off (as a loaded machine's collector lags behind),
// nothing but the release collects.
func TestDecodedMemoryCollectedBeforeRelease(t *testing.T) {
	large, err := imagetest.ZeroPNG(4600, 4600, imagetest.RGBA, 8, false) // 85 MB decoded
	if err != nil {
		t.Fatal(err)
	}
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if _, _, err := Photo(large); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > 16<<20 {
		t.Errorf("after a photo of 85 MB decoded the heap holds %d MB more: its memory was not collected before the budget was released", grown>>20)
	}
}
