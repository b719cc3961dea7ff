package views

// Component tests, as templ's own examples write them: render a component
// with a plain struct, parse the HTML and check what the user sees. The
// parser is golang.org/x/net/html, already in go.sum (an indirect
// dependency through echo).

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/a-h/templ"
	"golang.org/x/net/html"
)

// render renders c and parses it as a page's body.
func render(tb testing.TB, c templ.Component) *html.Node {
	tb.Helper()
	var buf bytes.Buffer
	if err := c.Render(context.Background(), &buf); err != nil {
		tb.Fatalf("render: %v", err)
	}
	doc, err := html.Parse(&buf)
	if err != nil {
		tb.Fatalf("parse: %v", err)
	}
	return doc
}

// attr is an element's attribute ("" when it has none).
func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func hasAttr(n *html.Node, key string) bool {
	for _, a := range n.Attr {
		if a.Key == key {
			return true
		}
	}
	return false
}

func hasClass(n *html.Node, class string) bool {
	for _, c := range strings.Fields(attr(n, "class")) {
		if c == class {
			return true
		}
	}
	return false
}

// sel is a small selector: an element name ("" for any), then any of
// "#id", ".class" and "[attr]" / "[attr=value]", e.g. "span.badge[data-anomaly]".
func sel(s string) func(*html.Node) bool {
	var tag string
	var checks []func(*html.Node) bool
	i := strings.IndexAny(s, "#.[")
	if i < 0 {
		i = len(s)
	}
	tag, s = s[:i], s[i:]
	for s != "" {
		kind := s[0]
		s = s[1:]
		var part string
		if kind == '[' {
			part, s, _ = strings.Cut(s, "]")
		} else {
			j := strings.IndexAny(s, "#.[")
			if j < 0 {
				j = len(s)
			}
			part, s = s[:j], s[j:]
		}
		switch kind {
		case '#':
			checks = append(checks, func(n *html.Node) bool { return attr(n, "id") == part })
		case '.':
			checks = append(checks, func(n *html.Node) bool { return hasClass(n, part) })
		case '[':
			if k, v, ok := strings.Cut(part, "="); ok {
				checks = append(checks, func(n *html.Node) bool { return hasAttr(n, k) && attr(n, k) == v })
			} else {
				checks = append(checks, func(n *html.Node) bool { return hasAttr(n, part) })
			}
		}
	}
	return func(n *html.Node) bool {
		if n.Type != html.ElementNode || (tag != "" && n.Data != tag) {
			return false
		}
		for _, c := range checks {
			if !c(n) {
				return false
			}
		}
		return true
	}
}

// all lists the elements under n that match selector s, in document order.
// s is a chain of sel's compounds joined by descendant (space), child (">")
// and next-sibling ("+") combinators: "section#unlocks > div tbody tr".
func all(n *html.Node, s string) []*html.Node {
	set := []*html.Node{n}
	comb := " "
	for _, tok := range strings.Fields(s) {
		if tok == ">" || tok == "+" {
			comb = tok
			continue
		}
		match := sel(tok)
		var next []*html.Node
		seen := map[*html.Node]bool{}
		add := func(e *html.Node) {
			if match(e) && !seen[e] {
				seen[e] = true
				next = append(next, e)
			}
		}
		for _, m := range set {
			switch comb {
			case ">":
				for c := m.FirstChild; c != nil; c = c.NextSibling {
					add(c)
				}
			case "+":
				c := m.NextSibling
				for c != nil && c.Type != html.ElementNode {
					c = c.NextSibling
				}
				if c != nil {
					add(c)
				}
			default:
				var walk func(*html.Node)
				walk = func(e *html.Node) {
					for c := e.FirstChild; c != nil; c = c.NextSibling {
						add(c)
						walk(c)
					}
				}
				walk(m)
			}
		}
		set, comb = next, " "
	}
	return set
}

// one is the only element under n that matches s.
func one(tb testing.TB, n *html.Node, s string) *html.Node {
	tb.Helper()
	found := all(n, s)
	if len(found) != 1 {
		tb.Fatalf("%d elements match %q, want 1", len(found), s)
	}
	return found[0]
}

// text is the text a user reads in n, its white space collapsed.
func text(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		switch {
		case n.Type == html.TextNode:
			b.WriteString(n.Data)
		case n.Type == html.ElementNode && n.Data == "br":
			b.WriteString(" ")
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return strings.Join(strings.Fields(b.String()), " ")
}

// texts is the text of each element under n that matches s.
func texts(n *html.Node, s string) []string {
	var out []string
	for _, e := range all(n, s) {
		out = append(out, text(e))
	}
	return out
}

// rows reads each row of the table rows under n as its cells' texts joined
// by " | ".
func rows(n *html.Node, s string) []string {
	var out []string
	for _, tr := range all(n, s) {
		var cells []string
		for c := tr.FirstChild; c != nil; c = c.NextSibling {
			if c.Type == html.ElementNode && (c.Data == "td" || c.Data == "th") {
				cells = append(cells, text(c))
			}
		}
		out = append(out, strings.Join(cells, " | "))
	}
	return out
}
