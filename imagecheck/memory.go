package imagecheck

import (
	"context"
	"encoding/binary"
	"image"
	"image/color"
	"runtime"
	"time"

	"github.com/doorledger/doorledger"
	"golang.org/x/sync/semaphore"
)

// The pixel caps bound an image's size, not the memory decoding it takes:
// that depends on the bytes of each decoded pixel (a 16-bit RGBA PNG takes 8,
// so a 300 KB PNG of 40 megapixels decodes to 320 MB), on what the decoder
// keeps besides (a progressive JPEG keeps its DCT coefficients, 4 bytes a
// sample), and on the copies re-encoding makes. So the cost of each image is
// computed from its header before anything is decoded, refused over
// MaxDecodeBytes, and taken from a budget the whole process shares,
// MaxDecodingBytes: parallel uploads queue for it instead of all decoding at
// once, and one that waits longer than DecodeWait is refused (ETOOMANY).
const (
	MaxDecodeBytes   = 96 << 20  // one image: decoded, what the decoder keeps besides, and the re-encoding copies
	MaxDecodingBytes = 128 << 20 // every image decoding at once in the process
	DecodeWait       = 20 * time.Second

	// decoderState is what a decoder holds besides pixels: inflate window and
	// tables, Huffman tables, buffered input.
	decoderState = 64 << 10

	// collectFrom is the cost from which a finished decode's memory is
	// collected before its share of the budget is given back. The budget
	// counts the bytes a decode holds while it runs; once it ends they are
	// garbage until the collector runs, and the next decode, let in by the
	// released budget, would allocate beside them, so that under load the
	// resident memory grew well past the budget (docs/security.md, Uploads).
	// A collection of the portal's small heap costs far less than decoding
	// such an image.
	collectFrom = 16 << 20
)

// decoding is the process's decoding budget, in bytes. Its waiters are served
// in order, so a large image is not starved by a stream of small ones.
var decoding = semaphore.NewWeighted(MaxDecodingBytes)

// errBusy is the refusal of an image that waited DecodeWait for the budget.
func errBusy() error {
	return doorledger.Errorf(doorledger.ETOOMANY, "The portal is busy processing other images. Please try again in a minute.")
}

// reserve takes cost bytes of the decoding budget, waiting until ctx ends at
// most, and returns the function that gives them back: call it once the
// decoded image is no longer referenced, so that a large one is collected
// before another decode may start.
func reserve(ctx context.Context, cost int64) (release func(), err error) {
	if err := decoding.Acquire(ctx, cost); err != nil {
		return nil, errBusy()
	}
	return func() {
		if cost >= collectFrom {
			runtime.GC()
		}
		decoding.Release(cost)
	}, nil
}

// reserveWaiting is reserve with DecodeWait as the limit.
func reserveWaiting(cost int64) (release func(), err error) {
	ctx, cancel := context.WithTimeout(context.Background(), DecodeWait)
	defer cancel()
	return reserve(ctx, cost)
}

// pngCost is the memory decoding and re-encoding a PNG takes, from its
// header: the decoded image (the standard decoder's form for the colour type:
// gray 1 byte a pixel, or 4 with a transparent colour, RGBA 4, 16-bit 2 to 8,
// paletted 1), the full-size copy encodePNG makes of a 16-bit or paletted one,
// the largest pass an interlaced image is read into before it is merged
// (half the image), the two rows the decoder filters (8 bytes a pixel at
// most), its state, and the re-encoded bytes. ok is false when the chunks
// before the image data are malformed.
func pngCost(b []byte, cfg image.Config) (cost int64, ok bool) {
	interlaced, transparent, ok := pngHeader(b)
	if !ok {
		return 0, false
	}
	var decoded, copied int64
	if _, paletted := cfg.ColorModel.(color.Palette); paletted {
		decoded, copied = 1, 4
	} else {
		switch cfg.ColorModel {
		case color.GrayModel:
			decoded = 1
			if transparent {
				decoded = 4
			}
		case color.Gray16Model:
			decoded, copied = 2, 1
			if transparent {
				decoded, copied = 8, 4
			}
		case color.RGBAModel, color.NRGBAModel:
			decoded = 4
		default: // RGBA64, NRGBA64
			decoded, copied = 8, 4
		}
	}
	px := int64(cfg.Width) * int64(cfg.Height)
	cost = px * (decoded + copied)
	if interlaced {
		cost += px * decoded / 2
	}
	rows := 2 * (1 + 8*int64(cfg.Width))
	return cost + rows + decoderState + 2*int64(len(b)), true
}

// pngHeader reads the chunks before the image data: whether the image is
// interlaced (IHDR) and has a transparent colour (tRNS), which the decoder
// turns gray and truecolor images into NRGBA for.
func pngHeader(b []byte) (interlaced, transparent, ok bool) {
	i := len(pngMagic)
	for i+8 <= len(b) {
		n := int64(binary.BigEndian.Uint32(b[i:]))
		typ := string(b[i+4 : i+8])
		if n > int64(len(b)-i-12) {
			return false, false, false
		}
		data := b[i+8 : i+8+int(n)]
		switch typ {
		case "IHDR":
			if len(data) != 13 {
				return false, false, false
			}
			interlaced = data[12] != 0
		case "tRNS":
			transparent = true
		case "IDAT":
			return interlaced, transparent, true
		}
		i += 12 + int(n)
	}
	return false, false, false
}

// jpegCost is the memory decoding and re-encoding a JPEG takes, from its
// frame header, as the standard decoder allocates it: each component's
// samples padded to whole MCUs (1 byte each), for a 4-component (CMYK) image
// also the CMYK image they are converted into (4 bytes a pixel), for a
// progressive one the DCT coefficients of every sample (4 bytes each), the
// upright copy an EXIF orientation other than 1 needs (RGBA, 4 bytes a pixel;
// gray 1), the decoder's state, and the re-encoded bytes. ok is false
// without a frame header the decoder reads.
func jpegCost(b []byte, cfg image.Config, orientation int) (cost int64, ok bool) {
	progressive, comps, ok := jpegFrame(b)
	if !ok {
		return 0, false
	}
	w, h := int64(cfg.Width), int64(cfg.Height)
	h0, v0 := int64(comps[0][0]), int64(comps[0][1])
	if len(comps) == 1 {
		h0, v0 = 1, 1 // the decoder ignores a lone component's sampling factors
	}
	mxx, myy := (w+8*h0-1)/(8*h0), (h+8*v0-1)/(8*v0) // MCUs across and down
	var samples int64
	for _, c := range comps {
		hi, vi := int64(c[0]), int64(c[1])
		if len(comps) == 1 {
			hi, vi = 1, 1
		}
		samples += 64 * hi * vi * mxx * myy
	}
	cost = samples
	if len(comps) == 4 {
		cost += 4 * w * h
	}
	if progressive {
		cost += 4 * samples
	}
	if orientation >= 2 && orientation <= 8 {
		if len(comps) == 1 {
			cost += w * h
		} else {
			cost += 4 * w * h
		}
	}
	return cost + decoderState + 2*int64(len(b)), true
}

// jpegFrame reads the frame header (SOF0, SOF1 or SOF2, the frames the
// standard decoder reads): whether it is progressive, and each component's
// horizontal and vertical sampling factors. Every offset is bounds-checked.
func jpegFrame(b []byte) (progressive bool, comps [][2]int, ok bool) {
	i := 2 // past SOI
	for i+4 <= len(b) {
		if b[i] != 0xff {
			return false, nil, false
		}
		marker := b[i+1]
		switch {
		case marker == 0xff: // fill byte
			i++
			continue
		case marker == 0xd9 || marker == 0xda: // EOI, SOS: no frame header before the image data
			return false, nil, false
		case marker == 0x01 || (marker >= 0xd0 && marker <= 0xd7): // no length
			i += 2
			continue
		}
		n := int(binary.BigEndian.Uint16(b[i+2:]))
		if n < 2 || i+2+n > len(b) {
			return false, nil, false
		}
		seg := b[i+4 : i+2+n]
		if marker == 0xc0 || marker == 0xc1 || marker == 0xc2 {
			// precision(1) height(2) width(2) components(1), then 3 bytes each
			if len(seg) < 6 {
				return false, nil, false
			}
			nc := int(seg[5])
			if nc != 1 && nc != 3 && nc != 4 || len(seg) < 6+3*nc {
				return false, nil, false
			}
			for k := range nc {
				hv := seg[6+3*k+1]
				hi, vi := int(hv>>4), int(hv&0x0f)
				if hi < 1 || hi > 4 || vi < 1 || vi > 4 {
					return false, nil, false
				}
				comps = append(comps, [2]int{hi, vi})
			}
			return marker == 0xc2, comps, true
		}
		i += 2 + n
	}
	return false, nil, false
}
