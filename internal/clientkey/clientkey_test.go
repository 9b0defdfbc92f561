package clientkey

import (
	"fmt"
	"net/http/httptest"
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

func TestFromRequest(t *testing.T) {
	trusted, err := ParsePrefixes("10.0.0.0/8, 192.0.2.1, 2001:db8:ffff::/48")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		remote  string
		xff     []string // X-Forwarded-For header lines, in order
		trusted []netip.Prefix
		want    string
	}{
		{name: "no proxies trusted: the header is ignored", remote: "10.1.1.1:4000", xff: []string{"203.0.113.9"}, want: "10.1.1.1"},
		{name: "an untrusted peer's header is ignored", remote: "198.51.100.5:4000", xff: []string{"203.0.113.9"}, trusted: trusted, want: "198.51.100.5"},
		{name: "a trusted proxy names the client", remote: "10.1.1.1:4000", xff: []string{"203.0.113.9"}, trusted: trusted, want: "203.0.113.9"},
		{name: "what the client wrote further left is not believed", remote: "10.1.1.1:4000", xff: []string{"1.2.3.4, 203.0.113.9"}, trusted: trusted, want: "203.0.113.9"},
		{name: "a chain of trusted proxies", remote: "10.1.1.1:4000", xff: []string{"203.0.113.9, 192.0.2.1, 10.2.2.2"}, trusted: trusted, want: "203.0.113.9"},
		{name: "header split over lines", remote: "10.1.1.1:4000", xff: []string{"1.2.3.4, 203.0.113.9", "192.0.2.1"}, trusted: trusted, want: "203.0.113.9"},
		{name: "only trusted hops: the leftmost", remote: "10.1.1.1:4000", xff: []string{"10.3.3.3, 10.2.2.2"}, trusted: trusted, want: "10.3.3.3"},
		{name: "no header: the proxy itself", remote: "10.1.1.1:4000", trusted: trusted, want: "10.1.1.1"},
		{name: "garbage stops at the last address", remote: "10.1.1.1:4000", xff: []string{"203.0.113.9, not-an-ip, 10.2.2.2"}, trusted: trusted, want: "10.2.2.2"},
		{name: "garbage next to the proxy", remote: "10.1.1.1:4000", xff: []string{"203.0.113.9, unknown"}, trusted: trusted, want: "10.1.1.1"},
		{name: "an IPv6 client by its /64", remote: "[2001:db8:ffff::1]:4000", xff: []string{"2001:db8:1:2::99"}, trusted: trusted, want: "2001:db8:1:2::/64"},
		{name: "an address with a port", remote: "10.1.1.1:4000", xff: []string{"[2001:db8:1:2::99]:5555"}, trusted: trusted, want: "2001:db8:1:2::/64"},
		{name: "IPv4-mapped proxy", remote: "[::ffff:10.1.1.1]:4000", xff: []string{"203.0.113.9"}, trusted: trusted, want: "203.0.113.9"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tc.remote
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			got, ok := FromRequest(r, tc.trusted)
			if !ok || String(got) != tc.want {
				t.Errorf("FromRequest = %s, %v; want %s", String(got), ok, tc.want)
			}
		})
	}
}

func TestParsePrefixes(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr bool
	}{
		{in: "", want: "[]"},
		{in: " , ", want: "[]"},
		{in: "10.0.0.0/8", want: "[10.0.0.0/8]"},
		{in: "10.1.2.3/8, 192.0.2.1,2001:db8::/32", want: "[10.0.0.0/8 192.0.2.1/32 2001:db8::/32]"},
		{in: "::ffff:192.0.2.1", want: "[192.0.2.1/32]"},
		{in: "10.0.0.0/8, proxy.example", wantErr: true},
		{in: "10.0.0.0/33", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParsePrefixes(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("ParsePrefixes(%q) error %v, want error %v", tc.in, err, tc.wantErr)
			}
			if err == nil && fmt.Sprint(got) != tc.want {
				t.Errorf("ParsePrefixes(%q) = %v, want %s", tc.in, got, tc.want)
			}
		})
	}
}
