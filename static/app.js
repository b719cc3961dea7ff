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
})();
