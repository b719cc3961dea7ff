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
})();
