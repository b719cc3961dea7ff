package browsertest

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/dom"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// pageJS is the waiter evaluated in the page: see its comment.
//
//go:embed page.js
var pageJS string

// trackerJS runs in every document of a tab before the page's own scripts
// (the DevTools protocol adds it, so the page's CSP does not apply). For the
// waiter's idea of a settled page it counts the requests in flight (htmx
// uses XMLHttpRequest; its htmx-request class alone is lost when a swap
// removes the element that made the request), and remembers which live
// regions have had a server-sent event.
const trackerJS = `(() => {
	if (window.__browsertest) return;
	const sse = new WeakSet();
	const bt = window.__browsertest = {sse, xhr: 0};
	const send = XMLHttpRequest.prototype.send;
	XMLHttpRequest.prototype.send = function (...args) {
		bt.xhr++;
		this.addEventListener("loadend", () => bt.xhr--, {once: true});
		try {
			return send.apply(this, args);
		} catch (e) {
			bt.xhr--;
			throw e;
		}
	};
	const mark = (e) => {
		const el = e.target instanceof Element && e.target.closest("[sse-connect], [data-sse-connect]");
		if (el) sse.add(el);
	};
	document.addEventListener("htmx:sseMessage", mark);
	document.addEventListener("htmx:sseError", mark);
})()`

// installTracker makes every document the tab loads from now on run trackerJS.
func installTracker(ctx context.Context, t *chromedp.Target) error {
	_, err := cdp.Call(ctx, t, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: trackerJS})
	return err
}

// waitArgs is the waiter's a.
type waitArgs struct {
	Kind    string `json:"kind"`
	Sel     string `json:"sel,omitempty"`
	Value   string `json:"value"`
	Timeout int64  `json:"timeout"` // milliseconds
}

// waitResult is the waiter's answer.
type waitResult struct {
	OK     bool            `json:"ok"`
	Value  json.RawMessage `json:"value"`
	Why    string          `json:"why"`
	Waited float64         `json:"waited"` // milliseconds
}

// budget is how long the waiter may wait in the page: until well before
// ctx's deadline (a quarter of what is left, at least a second, is kept for
// the answer to come back from a busy machine), so that it gives up first
// and says why, and never acts after the test stopped waiting for it.
func budget(ctx context.Context) time.Duration {
	d := DefaultStepTimeout
	if dl, ok := ctx.Deadline(); ok {
		d = time.Until(dl)
	}
	return max(d-max(d/4, time.Second), 0)
}

// waiterExpr is the expression that runs the waiter with args; read, if not
// empty, is a JavaScript expression the waiter evaluates as read().
func waiterExpr(args waitArgs, read string) string {
	a, err := json.Marshal(args)
	if err != nil {
		panic(err) // strings and numbers only
	}
	fn := "undefined"
	if read != "" {
		fn = "() => (\n" + read + "\n)"
	}
	return "(" + pageJS + ")(" + string(a) + ", " + fn + ")"
}

// navigating reports whether err says the page went away under an
// evaluation: it navigated, or reloaded, while the waiter waited.
func navigating(err error) bool {
	if err == nil {
		return false
	}
	s := err.Error()
	for _, m := range []string{
		"Execution context was destroyed",
		"Inspected target navigated or closed",
		"Cannot find context with specified id",
		"Cannot find default execution context",
	} {
		if strings.Contains(s, m) {
			return true
		}
	}
	return false
}

// wait runs the waiter once with args, bounded by ctx. When the page
// navigates under it and retry is set (a read, which is safe to repeat) it
// runs again on the new page until the budget is spent.
func wait(ctx context.Context, t *chromedp.Target, args waitArgs, read string, retry bool, opts ...chromedp.EvaluateOption) (waitResult, error) {
	opts = append([]chromedp.EvaluateOption{chromedp.EvalAwaitPromise}, opts...)
	for {
		args.Timeout = budget(ctx).Milliseconds()
		raw, err := chromedp.Evaluate[[]byte](waiterExpr(args, read), opts...)(ctx, t)
		if retry && navigating(err) && ctx.Err() == nil && budget(ctx) > 0 {
			// The new document is on its way: look again shortly.
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		if err != nil {
			var ex *chromedp.ExceptionError
			if errors.As(err, &ex) {
				msg := exceptionText(ex.ExceptionDetails)
				if strings.Contains(msg, "SyntaxError") && read != "" {
					msg += " (Eval, WaitFor and Wait take one expression: write statements as (() => { …; return v; })())"
				}
				return waitResult{}, fmt.Errorf("the page threw %s", msg)
			}
			if navigating(err) {
				return waitResult{}, fmt.Errorf("the page navigated away (%v): await a navigation with AwaitNavigation", err)
			}
			if ctx.Err() != nil {
				return waitResult{}, fmt.Errorf("the page did not answer within the step: %w (a JavaScript dialog left open blocks it: answer window.confirm with page.HandleJavaScriptDialog; or the machine is too busy for Options.StepTimeout)", err)
			}
			return waitResult{}, err
		}
		var r waitResult
		if err := json.Unmarshal(raw, &r); err != nil {
			return waitResult{}, fmt.Errorf("the waiter's answer %s: %v", raw, err)
		}
		if !r.OK {
			return r, fmt.Errorf("gave up after %v waiting for %s", ms(r.Waited), r.Why)
		}
		return r, nil
	}
}

func ms(f float64) time.Duration {
	return (time.Duration(f) * time.Millisecond).Round(time.Millisecond)
}

// decode turns the waiter's value into a T as chromedp.Evaluate does: null
// or undefined only for types that can be nil.
func decode[T any](raw json.RawMessage) (T, error) {
	var v T
	if _, ok := any(v).(chromedp.Void); ok {
		return v, nil
	}
	if len(raw) == 0 || string(raw) == "null" {
		switch reflect.TypeFor[T]().Kind() {
		case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Interface:
			return v, nil
		}
		if len(raw) == 0 {
			return v, chromedp.ErrJSUndefined
		}
		return v, chromedp.ErrJSNull
	}
	err := json.Unmarshal(raw, &v)
	return v, err
}

// Settle waits until the page is settled: the document has loaded, htmx has
// no request in flight and no swap or settle under way, and every live
// region (sse-connect) has had its first server-sent event. Navigate,
// AwaitNavigation, Eval, WaitFor and the actions of this package (Click,
// SendKeys, SetValue, SetUploadFiles) settle first by themselves.
func Settle(tb testing.TB, ctx context.Context) {
	tb.Helper()
	sctx, cancel := step(ctx)
	defer cancel()
	if _, err := chromedp.Run(sctx, settle()); err != nil {
		tb.Fatalf("browser: waiting for the page to settle: %v\n%s", err, Describe(ctx))
	}
}

func settle() chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		_, err := wait(ctx, t, waitArgs{Kind: "settle"}, "", true)
		return chromedp.Void{}, err
	}
}

// WaitFor waits, without reloading, until the page is settled and the
// JavaScript expression expr (one expression, as for Eval) gives a value
// other than null, undefined or false, and returns that value decoded into T. An exception thrown by expr
// counts as "not yet" (an element it reads may still be coming). what says,
// for the failure message, what the test waits for ("the acknowledgement in
// the row"). The wait ends at the step deadline (Options.StepTimeout).
//
// Each check runs inside the page in one evaluation, so it sees one
// consistent DOM; use it instead of sleeping and instead of chromedp.Poll.
func WaitFor[T any](tb testing.TB, ctx context.Context, what, expr string) T {
	tb.Helper()
	v, err := Wait[T](ctx, expr)
	if err != nil {
		tb.Fatalf("browser: waiting for %s: %v\n%s", what, err, Describe(ctx))
	}
	return v
}

// until waits until expr gives a value (see WaitFor).
func until[T any](expr string) chromedp.Action[T] { return valueOf[T]("until", expr) }

// read evaluates expr once the page is settled.
func read[T any](expr string) chromedp.Action[T] { return valueOf[T]("read", expr) }

// valueOf runs the waiter of kind ("read" or "until") on expr and decodes
// the value it gives.
func valueOf[T any](kind, expr string) chromedp.Action[T] {
	return func(ctx context.Context, t *chromedp.Target) (T, error) {
		r, err := wait(ctx, t, waitArgs{Kind: kind}, expr, true)
		if err != nil {
			var zero T
			return zero, err
		}
		return decode[T](r.Value)
	}
}

// Click is an action that clicks the element sel selects (a CSS selector, or
// an XPath expression when it starts with / or "("), as a person would, once
// the page is settled and the element is visible, enabled and not covered by
// another element. Finding the element and clicking it happen in the page in
// one JavaScript task, so an htmx swap cannot replace the element in
// between (chromedp.Click resolves a node id first and clicks it in later
// round trips: a swap in between fails it with "Could not find node with
// given id"). The click runs with a user gesture. Run it with Do, or with
// AwaitNavigation when it leads to another page.
func Click(sel string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		_, err := wait(ctx, t, waitArgs{Kind: "click", Sel: sel}, "", false, func(p *runtime.EvaluateParams) { p.UserGesture = new(true) })
		if err != nil {
			return chromedp.Void{}, fmt.Errorf("click %s: %w", sel, err)
		}
		return chromedp.Void{}, nil
	}
}

// SetValue is an action that sets the value of the input, select or
// textarea sel selects, once the page is settled, and fires input and
// change events as a person's edit does (htmx triggers on change see it).
// It fails when the element refuses the value (a select without such an
// option).
func SetValue(sel, value string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		if _, err := wait(ctx, t, waitArgs{Kind: "set", Sel: sel, Value: value}, "", false); err != nil {
			return chromedp.Void{}, fmt.Errorf("set %s to %q: %w", sel, value, err)
		}
		return chromedp.Void{}, nil
	}
}

// Clear is SetValue(sel, "").
func Clear(sel string) chromedp.Action[chromedp.Void] { return SetValue(sel, "") }

// typeTries is how often SendKeys types its text before it gives up.
const typeTries = 3

// SendKeys is an action that types text into the field sel selects with
// real key events, after what the field already holds. Once the page is
// settled it focuses the field (in the page, in one task), types, and checks
// that the field then holds what it held plus text. When a swap took the
// focus or replaced the field while typing, it puts the field's value back
// and types again (three times at most). text must not submit the form (no
// "\r"): click the submit button with AwaitNavigation.
func SendKeys(sel, text string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		var last string
		for try := 1; try <= typeTries; try++ {
			r, err := wait(ctx, t, waitArgs{Kind: "focus", Sel: sel}, "", false)
			if err != nil {
				return chromedp.Void{}, fmt.Errorf("type %q into %s: %w", text, sel, err)
			}
			var before string
			if err := json.Unmarshal(r.Value, &before); err != nil {
				return chromedp.Void{}, fmt.Errorf("type into %s: its value %s: %v", sel, r.Value, err)
			}
			if _, err := chromedp.KeyEvent(text)(ctx, t); err != nil {
				return chromedp.Void{}, fmt.Errorf("type %q into %s: %w", text, sel, err)
			}
			state, err := read[struct {
				Found   bool   `json:"found"`
				Value   string `json:"value"`
				Focused bool   `json:"focused"`
			}](`(() => { const el = `+findJS(sel)+`; return el ? {found: true, value: el.value, focused: el === document.activeElement} : {found: false}; })()`)(ctx, t)
			if err != nil {
				return chromedp.Void{}, fmt.Errorf("type %q into %s: reading it back: %w", text, sel, err)
			}
			if state.Found && state.Value == before+text {
				return chromedp.Void{}, nil
			}
			last = fmt.Sprintf("it holds %q (focused: %v), want %q", state.Value, state.Focused, before+text)
			if !state.Found {
				last = "it was gone after typing"
			}
			if state.Found {
				if _, err := wait(ctx, t, waitArgs{Kind: "set", Sel: sel, Value: before}, "", false); err != nil {
					return chromedp.Void{}, fmt.Errorf("type %q into %s: %s; putting its value back: %w", text, sel, last, err)
				}
			}
		}
		return chromedp.Void{}, fmt.Errorf("type %q into %s: %d tries, each lost to a change of the page: %s", text, sel, typeTries, last)
	}
}

// SetUploadFiles is an action that chooses files for the file input sel
// selects, once the page is settled, and checks that the input holds them.
// The element is found in the page and handed to the protocol as an object
// (not a node id, which a swap would invalidate); if a swap replaced it
// anyway, the files are chosen again on the new one.
func SetUploadFiles(sel string, files []string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		for try := 1; ; try++ {
			if _, err := wait(ctx, t, waitArgs{Kind: "settle"}, "", true); err != nil {
				return chromedp.Void{}, fmt.Errorf("choose files for %s: %w", sel, err)
			}
			args := waitArgs{Kind: "element", Sel: sel, Timeout: budget(ctx).Milliseconds()}
			obj, err := chromedp.Evaluate[*runtime.RemoteObject](waiterExpr(args, ""), chromedp.EvalAwaitPromise)(ctx, t)
			if err != nil {
				var ex *chromedp.ExceptionError
				if errors.As(err, &ex) {
					err = errors.New(exceptionText(ex.ExceptionDetails))
				}
				return chromedp.Void{}, fmt.Errorf("choose files for %s: %w", sel, err)
			}
			_, err = cdp.Call(ctx, t, dom.SetFileInputFiles, dom.SetFileInputFilesParams{Files: files, ObjectID: obj.ObjectID})
			cdp.Call(ctx, t, runtime.ReleaseObject, runtime.ReleaseObjectParams{ObjectID: obj.ObjectID})
			if err != nil {
				return chromedp.Void{}, fmt.Errorf("choose files for %s: %w", sel, err)
			}
			n, err := read[int](`(() => { const el = `+findJS(sel)+`; return el && el.files ? el.files.length : -1; })()`)(ctx, t)
			if err != nil {
				return chromedp.Void{}, fmt.Errorf("choose files for %s: reading it back: %w", sel, err)
			}
			if n == len(files) {
				return chromedp.Void{}, nil
			}
			if try == typeTries {
				return chromedp.Void{}, fmt.Errorf("choose files for %s: %d tries, it then holds %d files, want %d", sel, try, n, len(files))
			}
		}
	}
}

// findJS is a JavaScript expression for the element sel selects, as the
// waiter finds it: by XPath when sel starts with / or (, else by CSS.
func findJS(sel string) string {
	if strings.HasPrefix(sel, "/") || strings.HasPrefix(sel, "(") {
		return "document.evaluate(" + jsQuote(sel) + ", document, null, XPathResult.FIRST_ORDERED_NODE_TYPE, null).singleNodeValue"
	}
	return "document.querySelector(" + jsQuote(sel) + ")"
}

// jsQuote quotes s as a JavaScript string literal.
func jsQuote(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// Wait is WaitFor without failing the test: it returns the error, which
// says what was awaited, for a test that adds its own context (a server's
// log) before failing.
func Wait[T any](ctx context.Context, expr string) (T, error) {
	sctx, cancel := step(ctx)
	defer cancel()
	return chromedp.Run(sctx, until[T](expr))
}
