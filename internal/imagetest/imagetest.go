// Package imagetest makes hostile images for tests: small files that decode
// to a lot of memory.
package imagetest

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"hash/crc32"
)

// PNG colour types, as in the IHDR chunk.
const (
	Gray      = 0
	Truecolor = 2
	GrayAlpha = 4
	RGBA      = 6
)

// ZeroPNG returns a valid w×h PNG of all-zero samples of the colour type and
// bit depth: a few hundred kilobytes that decode to as much memory as the
// type takes (a 6400×6250 16-bit RGBA one is ~300 KB and decodes to 320 MB).
// interlaced sets Adam7 interlacing.
func ZeroPNG(w, h uint32, colorType, depth byte, interlaced bool) ([]byte, error) {
	channels := map[byte]uint64{Gray: 1, Truecolor: 3, GrayAlpha: 2, RGBA: 4}[colorType]
	var out bytes.Buffer
	out.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = depth, colorType
	if interlaced {
		ihdr[12] = 1
	}
	chunk(&out, "IHDR", ihdr)
	var idat bytes.Buffer
	zw, err := zlib.NewWriterLevel(&idat, zlib.BestSpeed)
	if err != nil {
		return nil, err
	}
	rowBytes := func(width uint32) int { return 1 + int((uint64(width)*channels*uint64(depth)+7)/8) }
	type pass struct{ x0, y0, dx, dy uint32 }
	passes := []pass{{0, 0, 1, 1}}
	if interlaced {
		passes = []pass{{0, 0, 8, 8}, {4, 0, 8, 8}, {0, 4, 4, 8}, {2, 0, 4, 4}, {0, 2, 2, 4}, {1, 0, 2, 2}, {0, 1, 1, 2}}
	}
	zero := make([]byte, rowBytes(w))
	for _, p := range passes {
		pw, ph := (w-min(w, p.x0)+p.dx-1)/p.dx, (h-min(h, p.y0)+p.dy-1)/p.dy
		if pw == 0 || ph == 0 {
			continue
		}
		row := zero[:rowBytes(pw)]
		for range ph {
			if _, err := zw.Write(row); err != nil {
				return nil, err
			}
		}
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	chunk(&out, "IDAT", idat.Bytes())
	chunk(&out, "IEND", nil)
	return out.Bytes(), nil
}

func chunk(w *bytes.Buffer, typ string, data []byte) {
	binary.Write(w, binary.BigEndian, uint32(len(data)))
	w.WriteString(typ)
	w.Write(data)
	binary.Write(w, binary.BigEndian, crc32.ChecksumIEEE(append([]byte(typ), data...)))
}
