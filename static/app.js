// Doorledger's page script. Kept out of the HTML so the Content-Security-Policy
// can forbid inline script. Behaviour that pages need is attached by data-*
// attributes.
(function () {
	"use strict";
	// Buttons with data-confirm ask before submitting their form. The listener
	// runs in the capture phase, before htmx's own submit listener on the form,
	// and a cancel stops the event there: otherwise an hx-post would already be
	// on its way while the question is still open.
	document.addEventListener("submit", function (ev) {
		var btn = ev.submitter;
		var msg = (btn && btn.getAttribute("data-confirm")) || ev.target.getAttribute("data-confirm");
		if (msg && !window.confirm(msg)) {
			ev.preventDefault();
			ev.stopPropagation();
		}
	}, true);

	// Tables for phones (app.css stacks their rows below 576px): each cell
	// gets its column's header as data-label, and the first link of each row
	// becomes the row's link (it covers the whole stacked row). A region
	// that still scrolls sideways gets the keyboard focus so that it can be
	// scrolled without a mouse, and a name.
	function prepare(root) {
		var tables = root.querySelectorAll ? root.querySelectorAll("table") : [];
		Array.prototype.forEach.call(tables, function (table) {
			var heads = table.tHead && table.tHead.rows[0] ? Array.prototype.map.call(table.tHead.rows[0].cells, function (th) {
				return th.textContent.trim();
			}) : [];
			Array.prototype.forEach.call(table.tBodies, function (body) {
				Array.prototype.forEach.call(body.rows, function (tr) {
					Array.prototype.forEach.call(tr.cells, function (td, i) {
						if (heads[i] && !td.hasAttribute("data-label")) {
							td.setAttribute("data-label", heads[i]);
						}
					});
					var link = tr.querySelector("a[href]");
					if (link && !tr.querySelector(".row-link")) {
						link.classList.add("row-link");
					}
				});
			});
		});
		var scrollers = document.querySelectorAll(".overflow-auto, pre");
		Array.prototype.forEach.call(scrollers, function (el) {
			if (el.scrollWidth > el.clientWidth + 1 || el.scrollHeight > el.clientHeight + 1) {
				if (!el.hasAttribute("tabindex")) {
					el.setAttribute("tabindex", "0");
					el.setAttribute("role", "region");
					el.setAttribute("aria-label", "scrollable content");
				}
			}
		});
	}
	document.addEventListener("DOMContentLoaded", function () { prepare(document); });
	document.addEventListener("htmx:load", function (ev) { prepare(ev.target.parentNode || document); });

	// A form sent back with errors: the first message takes the focus (and
	// is read out), and a field's message goes once the field is filled in
	// or ticked; the form's own message goes with the last of them.
	document.addEventListener("DOMContentLoaded", function () {
		var first = document.querySelector("main .form-error, main .field-error");
		if (first) {
			first.setAttribute("tabindex", "-1");
			first.focus();
		}
	});
	function fixed(ev) {
		var el = ev.target;
		if (!el || !el.getAttribute || el.getAttribute("aria-invalid") !== "true") {
			return;
		}
		if (el.type === "checkbox" ? !el.checked : String(el.value).trim() === "") {
			return;
		}
		el.removeAttribute("aria-invalid");
		var msg = el.id && document.getElementById(el.id + "-error");
		if (msg) {
			msg.hidden = true;
		}
		var form = el.form;
		if (form && !form.querySelector("[aria-invalid=true]")) {
			var all = document.querySelectorAll("main .form-error");
			Array.prototype.forEach.call(all, function (m) { m.hidden = true; });
		}
	}
	document.addEventListener("input", fixed);
	document.addEventListener("change", fixed);

	// Live regions (htmx's SSE extension) get an "end" event when the portal
	// closes their stream for good: the session ended, or this account has too
	// many live pages open. The browser would reconnect a closed stream by
	// itself: close it instead, and show why, once, at the top of the page.
	// The region's data-live says "open" or "ended".
	document.addEventListener("htmx:sseOpen", function (ev) {
		var source = ev.detail && ev.detail.source;
		var region = ev.target;
		if (region && region.setAttribute) {
			region.setAttribute("data-live", "open");
		}
		if (!source || source.doorledgerEnd) {
			return; // a reconnect of a source already listened to
		}
		source.doorledgerEnd = true;
		source.addEventListener("end", function (msg) {
			source.close();
			if (region && region.setAttribute) {
				region.setAttribute("data-live", "ended");
			}
			if (document.getElementById("live-ended")) {
				return;
			}
			var note = document.createElement("article");
			note.id = "live-ended";
			note.className = "flash flash-error";
			note.setAttribute("role", "alert");
			note.textContent = msg.data + " ";
			var reload = document.createElement("a");
			reload.href = window.location.href;
			reload.textContent = "Reload";
			note.appendChild(reload);
			var main = document.querySelector("main") || document.body;
			main.insertBefore(note, main.firstChild);
		});
	});
})();

// File inputs with data-max-bytes (the paper form of issue 17): a file over
// the size is refused in the browser, before the form is sent, with the
// message beside the field; the server checks again.
(function () {
	document.addEventListener("change", function (ev) {
		var input = ev.target;
		if (!input || input.type !== "file" || !input.getAttribute("data-max-bytes")) {
			return;
		}
		var max = parseInt(input.getAttribute("data-max-bytes"), 10);
		var big = null;
		for (var i = 0; i < input.files.length; i++) {
			if (input.files[i].size > max) {
				big = input.files[i];
			}
		}
		var id = input.id + "-size-error";
		var old = document.getElementById(id);
		if (old) {
			old.remove();
		}
		input.setCustomValidity("");
		input.removeAttribute("aria-invalid");
		if (!big) {
			return;
		}
		var msg = big.name + " is larger than " + Math.round(max / 1048576) + " MB: choose a smaller file.";
		input.setCustomValidity(msg);
		input.setAttribute("aria-invalid", "true");
		var note = document.createElement("small");
		note.id = id;
		note.className = "field-error";
		note.textContent = msg;
		input.insertAdjacentElement("afterend", note);
		input.value = "";
	});
	// Passkeys (WebAuthn). A form with data-passkey="create" (register) or
	// "get" (sign in, or confirm an action) asks the browser for a passkey
	// before it is sent: the options come from data-passkey-options, posted
	// with the form's CSRF token, and the browser's answer goes as JSON into
	// the form's hidden field named by data-passkey-field.
	function fromB64url(s) {
		s = s.replace(/-/g, "+").replace(/_/g, "/");
		while (s.length % 4) { s += "="; }
		var bin = atob(s), out = new Uint8Array(bin.length);
		for (var i = 0; i < bin.length; i++) { out[i] = bin.charCodeAt(i); }
		return out.buffer;
	}
	function toB64url(buf) {
		var bytes = new Uint8Array(buf), bin = "";
		for (var i = 0; i < bytes.length; i++) { bin += String.fromCharCode(bytes[i]); }
		return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
	}
	document.addEventListener("submit", function (ev) {
		var form = ev.target, mode = form.getAttribute && form.getAttribute("data-passkey");
		if (!mode) { return; }
		ev.preventDefault();
		var field = form.querySelector('input[name="' + form.getAttribute("data-passkey-field") + '"]');
		var shown = form.querySelector("[data-passkey-error]");
		var csrf = form.querySelector('input[name="_csrf"]');
		if (!window.PublicKeyCredential) {
			if (shown) { shown.textContent = "This browser has no passkeys."; shown.hidden = false; }
			return;
		}
		fetch(form.getAttribute("data-passkey-options"), {method: "POST", credentials: "same-origin", headers: {"X-CSRF-Token": csrf ? csrf.value : ""}})
			.then(function (r) {
				if (!r.ok) { throw new Error("the portal answered " + r.status); }
				return r.json();
			})
			.then(function (opts) {
				var pk = opts.publicKey;
				pk.challenge = fromB64url(pk.challenge);
				if (mode === "create") {
					pk.user.id = fromB64url(pk.user.id);
					(pk.excludeCredentials || []).forEach(function (c) { c.id = fromB64url(c.id); });
					return navigator.credentials.create({publicKey: pk});
				}
				(pk.allowCredentials || []).forEach(function (c) { c.id = fromB64url(c.id); });
				return navigator.credentials.get({publicKey: pk});
			})
			.then(function (cred) {
				var r = cred.response;
				var out = {id: cred.id, rawId: toB64url(cred.rawId), type: cred.type, clientExtensionResults: cred.getClientExtensionResults(),
					response: {clientDataJSON: toB64url(r.clientDataJSON)}};
				if (mode === "create") {
					out.response.attestationObject = toB64url(r.attestationObject);
					if (r.getTransports) { out.response.transports = r.getTransports(); }
				} else {
					out.response.authenticatorData = toB64url(r.authenticatorData);
					out.response.signature = toB64url(r.signature);
					if (r.userHandle) { out.response.userHandle = toB64url(r.userHandle); }
				}
				field.value = JSON.stringify(out);
				form.submit(); // not a submit event: this listener does not run again
			})
			.catch(function (e) {
				if (shown) { shown.textContent = "No passkey was given (" + e.message + "). Try again."; shown.hidden = false; }
			});
	});
})();
