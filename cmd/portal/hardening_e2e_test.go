package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// Issue 11.9: behind a reverse proxy that ends TLS the portal itself serves
// plain HTTP, but its public URL is https: cookies are then Secure with the
// __Host- prefix. Without either, plain-HTTP localhost keeps plain cookies.
func TestPublicHTTPSURLMakesCookiesSecure(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		secure bool
	}{
		{[]string{"-public-url", "https://doors.example.test"}, true},
		{nil, false},
	} {
		p := MustStartPortal(t, "", tc.args...)
		resp, err := http.Get(p.URL + "/login")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		var found bool
		for _, ck := range resp.Cookies() {
			if strings.HasSuffix(ck.Name, "dl_csrf") {
				found = true
				if strings.HasPrefix(ck.Name, "__Host-") != tc.secure || ck.Secure != tc.secure {
					t.Errorf("%v: cookie %s Secure %v, want __Host- and Secure: %v", tc.args, ck.Name, ck.Secure, tc.secure)
				}
			}
		}
		if !found {
			t.Errorf("%v: no CSRF cookie on /login: %v", tc.args, resp.Header.Values("Set-Cookie"))
		}
		p.Stop(t)
	}
}

func TestConfigSecure(t *testing.T) {
	for _, tc := range []struct {
		cfg  config
		want bool
	}{
		{config{}, false},
		{config{PublicURL: "http://127.0.0.1:8080"}, false},
		{config{PublicURL: "https://doors.example.test"}, true},
		{config{PublicURL: "HTTPS://doors.example.test/portal"}, true},
		{config{TLSCert: "cert.pem", TLSKey: "key.pem"}, true},
	} {
		if got := tc.cfg.secure(); got != tc.want {
			t.Errorf("%+v: secure() = %v, want %v", tc.cfg, got, tc.want)
		}
	}
}
