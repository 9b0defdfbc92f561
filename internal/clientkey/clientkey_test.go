package clientkey

import (
	"net/netip"
	"testing"
)

func TestOf(t *testing.T) {
	tests := []struct {
		name string
		a, b string
		same bool
	}{
		{name: "IPv6 hosts of one /64", a: "2001:db8:1:2::10", b: "2001:db8:1:2:aaaa:bbbb:cccc:dddd", same: true},
		{name: "IPv6 hosts of neighbouring /64s", a: "2001:db8:1:2::10", b: "2001:db8:1:3::10", same: false},
		{name: "IPv6 with and without a zone", a: "fe80::1%eth0", b: "fe80::2", same: true},
		{name: "one IPv4 address", a: "192.0.2.1", b: "192.0.2.1", same: true},
		{name: "neighbouring IPv4 addresses", a: "192.0.2.1", b: "192.0.2.2", same: false},
		{name: "IPv4 and its IPv4-mapped form", a: "192.0.2.1", b: "::ffff:192.0.2.1", same: true},
		{name: "IPv4-mapped forms of two IPv4 addresses", a: "::ffff:192.0.2.1", b: "::ffff:198.51.100.1", same: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, b := Of(netip.MustParseAddr(tc.a)), Of(netip.MustParseAddr(tc.b))
			if got := a == b; got != tc.same {
				t.Errorf("Of(%s) = %s, Of(%s) = %s: same %v, want %v", tc.a, a, tc.b, b, got, tc.same)
			}
		})
	}
}

func TestFromRemoteAddr(t *testing.T) {
	tests := []struct {
		remote string
		want   string // String of the key
		wantOK bool
	}{
		{remote: "192.0.2.7:40000", want: "192.0.2.7", wantOK: true},
		{remote: "192.0.2.7", want: "192.0.2.7", wantOK: true},
		{remote: "[::ffff:192.0.2.7]:40000", want: "192.0.2.7", wantOK: true},
		{remote: "[2001:db8:1:2:3:4:5:6]:40000", want: "2001:db8:1:2::/64", wantOK: true},
		{remote: "[fe80::1%eth0]:40000", want: "fe80::/64", wantOK: true},
		{remote: "2001:db8::1", want: "2001:db8::/64", wantOK: true},
		{remote: "@", want: "unknown", wantOK: false},
		{remote: "", want: "unknown", wantOK: false},
	}
	for _, tc := range tests {
		t.Run(tc.remote, func(t *testing.T) {
			got, ok := FromRemoteAddr(tc.remote)
			if String(got) != tc.want || ok != tc.wantOK {
				t.Errorf("FromRemoteAddr(%q) = %s, %v; want %s, %v", tc.remote, String(got), ok, tc.want, tc.wantOK)
			}
		})
	}
}
