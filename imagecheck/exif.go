package imagecheck

import (
	"encoding/binary"
	"image"
	"image/color"
)

// exifOrientation returns the EXIF orientation (1–8) of a JPEG, or 1 when it
// has none or the EXIF block is malformed. Phones store photos sideways and set
// this tag rather than rotate the pixels; re-encoding drops the tag, so Photo
// applies it first. Every offset is bounds-checked: the bytes are untrusted.
func exifOrientation(b []byte) int {
	i := 2 // past SOI
	for i+4 <= len(b) {
		if b[i] != 0xff {
			return 1
		}
		marker := b[i+1]
		switch {
		case marker == 0xff: // fill byte
			i++
			continue
		case marker == 0xd9 || marker == 0xda: // EOI, SOS: no EXIF before the image data
			return 1
		case marker == 0x01 || (marker >= 0xd0 && marker <= 0xd7): // no length
			i += 2
			continue
		}
		n := int(binary.BigEndian.Uint16(b[i+2:]))
		if n < 2 || i+2+n > len(b) {
			return 1
		}
		seg := b[i+4 : i+2+n]
		if marker == 0xe1 && len(seg) >= 6 && string(seg[:6]) == "Exif\x00\x00" {
			return tiffOrientation(seg[6:])
		}
		i += 2 + n
	}
	return 1
}

// tiffOrientation reads tag 0x0112 from IFD0 of a TIFF header.
func tiffOrientation(t []byte) int {
	if len(t) < 8 {
		return 1
	}
	var order binary.ByteOrder
	switch string(t[:2]) {
	case "II":
		order = binary.LittleEndian
	case "MM":
		order = binary.BigEndian
	default:
		return 1
	}
	if order.Uint16(t[2:]) != 42 {
		return 1
	}
	off := uint64(order.Uint32(t[4:]))
	if off+2 > uint64(len(t)) {
		return 1
	}
	count := uint64(order.Uint16(t[off:]))
	for k := uint64(0); k < count; k++ {
		e := off + 2 + 12*k
		if e+12 > uint64(len(t)) {
			return 1
		}
		tag, typ := order.Uint16(t[e:]), order.Uint16(t[e+2:])
		if tag != 0x0112 {
			continue
		}
		if typ != 3 { // SHORT
			return 1
		}
		if o := int(order.Uint16(t[e+8:])); o >= 1 && o <= 8 {
			return o
		}
		return 1
	}
	return 1
}

// orient returns img transformed so that it displays upright for the given
// EXIF orientation. Orientation 1 (and anything unknown) returns img itself.
func orient(img image.Image, o int) image.Image {
	if o < 2 || o > 8 {
		return img
	}
	src := img.Bounds()
	w, h := src.Dx(), src.Dy()
	dw, dh := w, h
	if o >= 5 { // the transposing ones swap width and height
		dw, dh = h, w
	}
	// from maps a destination pixel to the source pixel it shows (both 0-based).
	from := func(x, y int) (int, int) {
		switch o {
		case 2: // mirrored horizontally
			return w - 1 - x, y
		case 3: // rotated 180°
			return w - 1 - x, h - 1 - y
		case 4: // mirrored vertically
			return x, h - 1 - y
		case 5: // transposed
			return y, x
		case 6: // needs 90° clockwise
			return y, h - 1 - x
		case 7: // transversed
			return w - 1 - y, h - 1 - x
		default: // 8: needs 90° counter-clockwise
			return w - 1 - y, x
		}
	}

	switch s := img.(type) {
	case *image.YCbCr: // what the JPEG decoder returns for colour photos
		dst := image.NewRGBA(image.Rect(0, 0, dw, dh))
		for y := 0; y < dh; y++ {
			for x := 0; x < dw; x++ {
				sx, sy := from(x, y)
				sx, sy = sx+src.Min.X, sy+src.Min.Y
				yi, ci := s.YOffset(sx, sy), s.COffset(sx, sy)
				r, g, b := color.YCbCrToRGB(s.Y[yi], s.Cb[ci], s.Cr[ci])
				p := dst.PixOffset(x, y)
				dst.Pix[p+0], dst.Pix[p+1], dst.Pix[p+2], dst.Pix[p+3] = r, g, b, 0xff
			}
		}
		return dst
	case *image.Gray:
		dst := image.NewGray(image.Rect(0, 0, dw, dh))
		for y := 0; y < dh; y++ {
			for x := 0; x < dw; x++ {
				sx, sy := from(x, y)
				dst.Pix[dst.PixOffset(x, y)] = s.Pix[s.PixOffset(sx+src.Min.X, sy+src.Min.Y)]
			}
		}
		return dst
	default: // CMYK and anything else: slower, but rare
		dst := image.NewRGBA(image.Rect(0, 0, dw, dh))
		for y := 0; y < dh; y++ {
			for x := 0; x < dw; x++ {
				sx, sy := from(x, y)
				dst.Set(x, y, img.At(sx+src.Min.X, sy+src.Min.Y))
			}
		}
		return dst
	}
}
