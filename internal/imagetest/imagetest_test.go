package imagetest_test

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"testing"

	"github.com/doorledger/doorledger/internal/imagetest"
)

func TestZeroPNG(t *testing.T) {
	for _, tc := range []struct {
		colorType, depth byte
		interlaced       bool
		model            color.Model
	}{
		{imagetest.RGBA, 16, false, color.NRGBA64Model},
		{imagetest.Truecolor, 16, true, color.RGBA64Model},
		{imagetest.Gray, 8, true, color.GrayModel},
		{imagetest.GrayAlpha, 8, false, color.NRGBAModel},
	} {
		b, err := imagetest.ZeroPNG(37, 21, tc.colorType, tc.depth, tc.interlaced)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("type %d depth %d interlaced %v: %v", tc.colorType, tc.depth, tc.interlaced, err)
		}
		if img.Bounds() != image.Rect(0, 0, 37, 21) || img.ColorModel() != tc.model {
			t.Errorf("type %d depth %d: %v %T", tc.colorType, tc.depth, img.Bounds(), img.ColorModel())
		}
	}
}
