// Package static embeds the portal's CSS, scripts and vendored front-end
// libraries (see README.md here for their versions and licences), so the binary
// serves them itself and nothing is loaded from a CDN.
package static

import "embed"

// FS holds every asset, served under /static/.
//
//go:embed app.css app.js sign.js favicon.svg vendor
var FS embed.FS
