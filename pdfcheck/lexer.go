package pdfcheck

import (
	"bytes"
	"strconv"
)

type tokenKind int

const (
	tEOF tokenKind = iota
	tBad
	tInt
	tReal
	tName    // text without the slash, escapes not decoded
	tString  // literal or hex string; text is the raw contents
	tKeyword // obj, endobj, stream, R, true, null, …
	tDictOpen
	tDictClose
	tArrayOpen
	tArrayClose
	tOther // a closed dictionary or array, as a value
)

type token struct {
	kind tokenKind
	text []byte
}

func (t token) int() (int, bool) {
	if t.kind != tInt {
		return 0, false
	}
	n, err := strconv.Atoi(string(t.text))
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

func (t token) number() (float64, bool) {
	if t.kind != tInt && t.kind != tReal {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(t.text), 64)
	return f, err == nil
}

// lexer splits PDF bytes into tokens (ISO 32000-1, 7.2). It never allocates
// more than the token it returns, and every step consumes at least one byte.
type lexer struct {
	b   []byte
	pos int
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == 0
}

func isDelim(c byte) bool {
	switch c {
	case '(', ')', '<', '>', '[', ']', '{', '}', '/', '%':
		return true
	}
	return false
}

func (l *lexer) next() token {
	for l.pos < len(l.b) {
		c := l.b[l.pos]
		if isSpace(c) {
			l.pos++
			continue
		}
		if c == '%' { // a comment, to the end of the line
			for l.pos < len(l.b) && l.b[l.pos] != '\r' && l.b[l.pos] != '\n' {
				l.pos++
			}
			continue
		}
		break
	}
	if l.pos >= len(l.b) {
		return token{kind: tEOF}
	}
	start := l.pos
	c := l.b[l.pos]
	switch c {
	case '/':
		l.pos++
		for l.pos < len(l.b) && !isSpace(l.b[l.pos]) && !isDelim(l.b[l.pos]) {
			l.pos++
		}
		return token{kind: tName, text: l.b[start+1 : l.pos]}
	case '(':
		return l.literal()
	case '<':
		if l.pos+1 < len(l.b) && l.b[l.pos+1] == '<' {
			l.pos += 2
			return token{kind: tDictOpen}
		}
		end := bytes.IndexByte(l.b[l.pos:], '>')
		if end < 0 {
			return token{kind: tBad}
		}
		l.pos += end + 1
		return token{kind: tString, text: l.b[start+1 : l.pos-1]}
	case '>':
		if l.pos+1 < len(l.b) && l.b[l.pos+1] == '>' {
			l.pos += 2
			return token{kind: tDictClose}
		}
		return token{kind: tBad}
	case '[':
		l.pos++
		return token{kind: tArrayOpen}
	case ']':
		l.pos++
		return token{kind: tArrayClose}
	case ')', '{', '}':
		l.pos++
		return token{kind: tKeyword, text: l.b[start:l.pos]} // stray: a value of no consequence
	}
	for l.pos < len(l.b) && !isSpace(l.b[l.pos]) && !isDelim(l.b[l.pos]) {
		l.pos++
	}
	text := l.b[start:l.pos]
	return token{kind: classify(text), text: text}
}

// classify tells integers and reals from keywords.
func classify(text []byte) tokenKind {
	digits, dots := 0, 0
	for i, c := range text {
		switch {
		case c >= '0' && c <= '9':
			digits++
		case c == '.':
			dots++
		case (c == '+' || c == '-') && i == 0:
		default:
			return tKeyword
		}
	}
	switch {
	case digits == 0 || dots > 1:
		return tKeyword
	case dots == 1:
		return tReal
	}
	return tInt
}

// literal reads a (string), with balanced parentheses and backslash escapes.
func (l *lexer) literal() token {
	start := l.pos + 1
	depth := 0
	for l.pos < len(l.b) {
		switch l.b[l.pos] {
		case '\\':
			l.pos++
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				l.pos++
				return token{kind: tString, text: l.b[start : l.pos-1]}
			}
		}
		l.pos++
	}
	return token{kind: tBad}
}

// stream reads a stream's data after the "stream" keyword: length bytes
// when the dictionary stated a direct length that ends at "endstream",
// otherwise up to the next "endstream". It reports false when there is none.
func (l *lexer) stream(length int) ([]byte, bool) {
	p := l.pos
	if p < len(l.b) && l.b[p] == '\r' {
		p++
	}
	if p < len(l.b) && l.b[p] == '\n' {
		p++
	}
	if length >= 0 && length <= len(l.b)-p {
		end := p + length
		rest := bytes.TrimLeft(l.b[end:], " \t\r\n\f\x00")
		if bytes.HasPrefix(rest, []byte("endstream")) {
			l.pos = len(l.b) - len(rest) + len("endstream")
			return l.b[p:end], true
		}
	}
	i := bytes.Index(l.b[p:], []byte("endstream"))
	if i < 0 {
		return nil, false
	}
	data := bytes.TrimRight(l.b[p:p+i], "\r\n")
	l.pos = p + i + len("endstream")
	return data, true
}
