// The signing page: signature_pad draws on the canvas; on submit the drawing goes
// into a hidden field as a PNG data URL. A drawing sent back after a validation
// error is redrawn, so nothing the signer did is lost.
(function () {
	"use strict";
	var canvas = document.getElementById("signature-pad");
	var hidden = document.getElementById("signature-data");
	var form = document.getElementById("sign-form");
	if (!canvas || !hidden || !form || typeof SignaturePad === "undefined") {
		return;
	}
	var pad = new SignaturePad(canvas, { minWidth: 0.8, maxWidth: 2.6, penColor: "#1a237e" });

	function resize() {
		var ratio = Math.max(window.devicePixelRatio || 1, 1);
		var data = pad.toData();
		canvas.width = canvas.offsetWidth * ratio;
		canvas.height = canvas.offsetHeight * ratio;
		canvas.getContext("2d").scale(ratio, ratio);
		pad.clear();
		pad.fromData(data);
	}
	window.addEventListener("resize", resize);
	resize();
	if (hidden.value) {
		pad.fromDataURL(hidden.value, { width: canvas.offsetWidth, height: canvas.offsetHeight });
	}
	// Once the signer draws, an earlier "draw your signature" message is stale.
	pad.addEventListener("beginStroke", function () {
		var err = document.getElementById("signature-error");
		if (err) {
			err.hidden = true;
		}
	});
	document.getElementById("signature-clear").addEventListener("click", function () {
		pad.clear();
		hidden.value = "";
	});
	form.addEventListener("submit", function () {
		hidden.value = pad.isEmpty() ? "" : pad.toDataURL("image/png");
	});
})();
