package doorledger

import (
	"net"
	"testing"
)

// Only public unicast addresses are reached without the private flag.
func TestWebhookAddressAllowed(t *testing.T) {
	for _, tc := range []struct {
		ip   string
		want bool
	}{
		{"8.8.8.8", true},
		{"2001:4860:4860::8888", true},
		{"93.184.216.34", true},
		{"127.0.0.1", false},
		{"::1", false},
		{"10.1.2.3", false},
		{"172.16.0.1", false},
		{"192.168.1.1", false},
		{"169.254.169.254", false}, // cloud metadata
		{"fe80::1", false},
		{"fd00::1", false},
		{"100.64.0.1", false},
		{"0.0.0.0", false},
		{"::", false},
		{"224.0.0.1", false},
		{"255.255.255.255", false},
		{"::ffff:10.0.0.1", false}, // IPv4-mapped private
		{"::ffff:127.0.0.1", false},
		{"64:ff9b::a00:1", false}, // NAT64 of 10.0.0.1
	} {
		if got := WebhookAddressAllowed(net.ParseIP(tc.ip), false); got != tc.want {
			t.Errorf("%s: allowed %v, want %v", tc.ip, got, tc.want)
		}
		if !WebhookAddressAllowed(net.ParseIP(tc.ip), true) {
			t.Errorf("%s refused with the private flag", tc.ip)
		}
	}
}

func TestValidateEventURL(t *testing.T) {
	for raw, ok := range map[string]bool{
		"https://pms.example.com/in":          true,
		"http://127.0.0.1:8080/in":            true,
		"http://localhost/in":                 true,
		"http://pms.example.com/in":           false,
		"ftp://pms.example.com/in":            false,
		"https://user:pw@pms.example.com/in":  false,
		"https://pms.example.com/in#fragment": false,
		"pms.example.com/in":                  false,
		"":                                    false,
	} {
		if err := ValidateEventURL(raw); (err == nil) != ok {
			t.Errorf("%q: %v, want ok=%v", raw, err, ok)
		}
	}
}
