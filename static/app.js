// Doorledger's page script. Kept out of the HTML so the Content-Security-Policy
// can forbid inline script. Behaviour that pages need is attached by data-*
// attributes.
(function () {
	"use strict";
	// Buttons with data-confirm ask before submitting their form.
	document.addEventListener("submit", function (ev) {
		var btn = ev.submitter;
		var msg = (btn && btn.getAttribute("data-confirm")) || ev.target.getAttribute("data-confirm");
		if (msg && !window.confirm(msg)) {
			ev.preventDefault();
		}
	});
})();
