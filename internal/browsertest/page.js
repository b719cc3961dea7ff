// The waiter that browsertest evaluates in the page under test, in one
// Runtime.evaluate that awaits its promise. It waits, inside the page, until
// the page is settled and (for an action) its target is usable, then acts in
// the same JavaScript task as the last check: no htmx swap can replace the
// node between finding it and acting on it, because nothing else runs in the
// page in between.
//
// a.kind says what to do:
//   settle  wait until the page is settled
//   read    wait until settled, then return read()'s value (it may throw)
//   until   wait until settled and read() gives a value other than null,
//           undefined or false; return it (a throw counts as "not yet")
//   click   wait for a.sel to be clickable, then click it
//   focus   wait for a.sel to take text, focus it, put the caret at the end;
//           return its value
//   set     wait for a.sel to be enabled, set its value to a.value and fire
//           input and change, as a person's edit does
//   element wait for a.sel, return the element itself (not by value); throws
//           an Error saying what was waited for on time-out
// a.sel is a CSS selector, or an XPath expression when it starts with / or (.
// a.timeout is in milliseconds. The answer is {ok, value, why, waited}: why
// names what was still awaited when the time ran out.
async (a, read) => {
	const t0 = performance.now();
	const name = (el) => {
		if (!(el instanceof Element)) return String(el && el.nodeName);
		let s = el.tagName.toLowerCase();
		if (el.id) s += "#" + el.id;
		if (typeof el.className === "string" && el.className.trim()) s += "." + el.className.trim().split(/\s+/).join(".");
		return s;
	};
	// Why the page is not settled yet, or "" when it is: the document has
	// loaded; no request is in flight (the tracker's count of
	// XMLHttpRequests, and htmx's htmx-request class); no htmx swap or
	// settle is under way (htmx-swapping, htmx-settling, htmx-added: htmx
	// removes them and fires htmx:afterSettle when done); and every live
	// region (sse-connect) has had its first server-sent event, or an
	// error, so what it shows is the stream's and not the first paint's.
	const unsettled = () => {
		if (document.readyState !== "complete") return "the document to finish loading (readyState " + document.readyState + ")";
		const bt = window.__browsertest;
		if (bt && bt.xhr > 0) return "htmx to settle: " + bt.xhr + " request(s) in flight";
		const busy = document.querySelector(".htmx-request, .htmx-swapping, .htmx-settling, .htmx-added");
		if (busy) return "htmx to settle: " + name(busy) + " still has " + [...busy.classList].filter((c) => c.startsWith("htmx-")).join(", ");
		if (bt) {
			for (const el of document.querySelectorAll("[sse-connect], [data-sse-connect]")) {
				if (!bt.sse.has(el)) return "the first server-sent event of the live region " + name(el);
			}
		}
		return "";
	};
	const find = () => {
		if (/^[\/(]/.test(a.sel)) {
			return document.evaluate(a.sel, document, null, XPathResult.FIRST_ORDERED_NODE_TYPE, null).singleNodeValue;
		}
		return document.querySelector(a.sel);
	};
	const visible = (el) => {
		const r = el.getBoundingClientRect();
		return r.width > 0 && r.height > 0 && el.checkVisibility({visibilityProperty: true});
	};
	// What keeps el from being the target of a.kind, or "".
	const obstacle = (el) => {
		if (!(el instanceof Element)) return a.sel + " to be an element (it is " + name(el) + ")";
		if (a.kind !== "element" && a.kind !== "set" && !visible(el)) return name(el) + " to be visible";
		if (el.matches(":disabled")) return name(el) + " to be enabled";
		if (el.closest("[inert]")) return name(el) + " not to be inert";
		if (a.kind === "focus" && el.readOnly) return name(el) + " not to be read-only";
		if (a.kind === "click") {
			// A click lands where a person's would: the middle of the
			// element's first box, scrolled into view, must be the element
			// itself (or inside it, or its label), not something covering
			// it.
			el.scrollIntoView({block: "center", inline: "center", behavior: "instant"});
			// The first box: a link that wraps has a box per line, and
			// the middle of their bounding box may lie between them.
			const r = el.getClientRects()[0] || el.getBoundingClientRect();
			const x = Math.min(Math.max(r.left + r.width / 2, 0), window.innerWidth - 1);
			const y = Math.min(Math.max(r.top + r.height / 2, 0), window.innerHeight - 1);
			const hit = document.elementFromPoint(x, y);
			if (!hit) return name(el) + " to be inside the window";
			const label = hit.closest("label");
			if (hit !== el && !el.contains(hit) && !(label && label.control === el)) return name(el) + " not to be covered (" + name(hit) + " is on top of it)";
		}
		return "";
	};
	// unready is what the page itself was waiting for at the last check
	// (see unsettled); target is what, at the last check the page was
	// settled, kept the condition or the element from being ready. A
	// time-out reports target first: it is what the test waited for.
	let unready = "", target = "";
	for (;;) {
		unready = unsettled();
		if (!unready && (a.kind === "read" || a.kind === "until")) {
			try {
				let v = read();
				if (v instanceof Promise) v = await v;
				if (a.kind === "read" || (v !== null && v !== undefined && v !== false)) {
					return {ok: true, value: v, waited: performance.now() - t0};
				}
				target = "the condition (it gave " + JSON.stringify(v) + ")";
			} catch (e) {
				if (a.kind === "read") throw e;
				target = "the condition (it threw " + e + ")";
			}
		} else if (!unready && a.sel) {
			const el = find();
			target = el ? obstacle(el) : "an element matching " + a.sel;
			if (!target) {
				switch (a.kind) {
				case "element":
					return el;
				case "click":
					el.click();
					return {ok: true, waited: performance.now() - t0};
				case "focus":
					el.focus();
					if (document.activeElement !== el) {
						target = name(el) + " to take the focus";
						break;
					}
					try {
						el.setSelectionRange(el.value.length, el.value.length);
					} catch (e) {
						// email and number inputs have no selection
					}
					return {ok: true, value: el.value, waited: performance.now() - t0};
				case "set":
					el.value = a.value;
					if (el.value !== a.value) {
						target = name(el) + " to accept the value " + JSON.stringify(a.value) + " (it has " + JSON.stringify(el.value) + ")";
						break;
					}
					el.dispatchEvent(new Event("input", {bubbles: true}));
					el.dispatchEvent(new Event("change", {bubbles: true}));
					return {ok: true, waited: performance.now() - t0};
				}
			}
		} else if (!unready) {
			return {ok: true, waited: performance.now() - t0};
		}
		if (performance.now() - t0 >= a.timeout) {
			let why = target || unready;
			if (target && unready) why += " (and, at the end, " + unready + ")";
			if (a.kind === "element") throw new Error("waited " + Math.round(performance.now() - t0) + " ms for " + why);
			return {ok: false, why, waited: performance.now() - t0};
		}
		await new Promise((resolve) => setTimeout(resolve, 20));
	}
}
