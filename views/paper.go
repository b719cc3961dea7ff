package views

import (
	"strconv"
)

func pluralWord(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func byteWords(n int64) string {
	if n >= 1<<20 {
		return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MB"
	}
	return strconv.FormatInt((n+1023)/1024, 10) + " KB"
}
