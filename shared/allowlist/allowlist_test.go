package allowlist_test

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/port-azure-relay/relay/shared/allowlist"
)

// Port's published egress addresses, as the docs print them (protocols.md, "Port →
// relay"; docs.port.io, "Security"): the known answer the shorthands must give.
var (
	portEU = []string{"3.251.12.205", "34.252.219.131", "54.75.236.107"}
	portUS = []string{"44.221.30.248", "44.193.148.179", "34.197.132.205"}
)

func TestParse(t *testing.T) {
	tests := []struct {
		name  string
		list  string
		want  string   // the canonical list
		allow []string // addresses it must allow
		deny  []string // addresses it must refuse
	}{
		{name: "an empty list allows everyone", list: "", want: "",
			allow: []string{"203.0.113.10", "2001:db8::1"}},
		{name: "a blank list allows everyone", list: "  ", want: "", allow: []string{"198.51.100.1"}},
		{name: "one IPv4 address allows only itself", list: "192.0.2.7", want: "192.0.2.7/32",
			allow: []string{"192.0.2.7", "::ffff:192.0.2.7"}, deny: []string{"192.0.2.6", "192.0.2.8", "2001:db8::1"}},
		{name: "one IPv6 address allows only itself", list: "2001:db8::7", want: "2001:db8::7/128",
			allow: []string{"2001:db8::7", "2001:0db8:0:0:0:0:0:7"}, deny: []string{"2001:db8::6", "192.0.2.7"}},
		{name: "an IPv4 block allows its first and last address and nothing either side", list: "192.0.2.16/28", want: "192.0.2.16/28",
			allow: []string{"192.0.2.16", "192.0.2.31"}, deny: []string{"192.0.2.15", "192.0.2.32"}},
		{name: "an IPv6 block allows its first and last address and nothing either side", list: "2001:db8:0:1::/64", want: "2001:db8:0:1::/64",
			allow: []string{"2001:db8:0:1::", "2001:db8:0:1:ffff:ffff:ffff:ffff"}, deny: []string{"2001:db8::ffff:ffff:ffff:ffff", "2001:db8:0:2::"}},
		{name: "a /32 is one address", list: "198.51.100.9/32", want: "198.51.100.9/32",
			allow: []string{"198.51.100.9"}, deny: []string{"198.51.100.8", "198.51.100.10"}},
		{name: "an IPv4-mapped address is read as its IPv4", list: "::ffff:192.0.2.7", want: "192.0.2.7/32",
			allow: []string{"192.0.2.7", "::ffff:192.0.2.7"}, deny: []string{"192.0.2.8"}},
		{name: "an IPv4-mapped block is read as its IPv4 block", list: "::ffff:192.0.2.0/120", want: "192.0.2.0/24",
			allow: []string{"192.0.2.0", "192.0.2.255", "::ffff:192.0.2.255"}, deny: []string{"192.0.3.0"}},
		{name: "upper-case IPv6 is read", list: "2001:DB8::A", want: "2001:db8::a/128", allow: []string{"2001:db8::a"}},
		{name: "port-eu is Port's EU addresses", list: "port-eu", want: cidrs(portEU),
			allow: portEU, deny: append([]string{"3.251.12.204", "3.251.12.206"}, portUS...)},
		{name: "port-us is Port's US addresses", list: "port-us", want: cidrs(portUS),
			allow: portUS, deny: append([]string{"44.221.30.247", "44.221.30.249"}, portEU...)},
		{name: "shorthands, addresses and blocks mix, spaces around entries ignored", list: " port-eu , 192.0.2.1,2001:db8::/32 ",
			want: cidrs(portEU) + ",192.0.2.1/32,2001:db8::/32", allow: append([]string{"192.0.2.1", "2001:db8:ffff::1"}, portEU...),
			deny: append([]string{"192.0.2.2"}, portUS...)},
		{name: "an IPv6 block does not take in IPv4 addresses", list: "::/0", want: "::/0",
			allow: []string{"2001:db8::1"}, deny: []string{"192.0.2.1", "::ffff:192.0.2.1"}},
		{name: "a block with host bits set is the block as written", list: "10.0.0.1/8", want: "10.0.0.0/8",
			allow: []string{"10.0.0.0", "10.255.255.255", "10.0.0.1"}, deny: []string{"11.0.0.0"}},
		{name: "an IPv6 block with host bits set is the block as written", list: "2001:db8::1/64", want: "2001:db8::/64",
			allow: []string{"2001:db8::", "2001:db8::ffff:ffff:ffff:ffff"}, deny: []string{"2001:db8:0:1::"}},
		{name: "empty entries are ignored", list: "192.0.2.1,,192.0.2.2,", want: "192.0.2.1/32,192.0.2.2/32",
			allow: []string{"192.0.2.1", "192.0.2.2"}, deny: []string{"192.0.2.3"}},
		{name: "a list refuses a caller without an address", list: "0.0.0.0/0", want: "0.0.0.0/0",
			allow: []string{"192.0.2.1"}, deny: []string{"", "2001:db8::1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := allowlist.Parse(tt.list)
			if err != nil {
				t.Fatalf("Parse(%q) = %v, want nil", tt.list, err)
			}
			if got := l.String(); got != tt.want {
				t.Errorf("Parse(%q).String() = %q, want %q", tt.list, got, tt.want)
			}
			if l.Empty() != (tt.want == "") {
				t.Errorf("Parse(%q).Empty() = %v, want %v", tt.list, l.Empty(), tt.want == "")
			}
			for _, a := range tt.allow {
				if !l.Allows(addr(t, a)) {
					t.Errorf("Parse(%q).Allows(%s) = false, want true", tt.list, a)
				}
			}
			for _, a := range tt.deny {
				if l.Allows(addr(t, a)) {
					t.Errorf("Parse(%q).Allows(%s) = true, want false", tt.list, a)
				}
			}
		})
	}
}

func TestParseRefuses(t *testing.T) {
	tests := []struct {
		name, list, entry, why string
	}{
		{"a word is refused", "port-asia", "port-asia", "is not an IP address"},
		{"a shorthand in capitals is refused", "PORT-EU", "PORT-EU", "is not an IP address"},
		{"a host name is refused", "api.port.io", "api.port.io", "is not an IP address"},
		{"three octets are refused", "192.0.2", "192.0.2", "is not an IP address"},
		{"an octet over 255 is refused", "192.0.2.256", "192.0.2.256", "is not an IP address"},
		{"a leading zero is refused", "192.0.2.07", "192.0.2.07", "is not an IP address"},
		{"an IPv4 prefix over 32 is refused", "192.0.2.0/33", "192.0.2.0/33", "is not an IP address"},
		{"an IPv6 prefix over 128 is refused", "2001:db8::/129", "2001:db8::/129", "is not an IP address"},
		{"a prefix without bits is refused", "192.0.2.0/", "192.0.2.0/", "is not an IP address"},
		{"a range is refused", "192.0.2.1-192.0.2.9", "192.0.2.1-192.0.2.9", "is not an IP address"},
		{"two double colons are refused", "2001::db8::1", "2001::db8::1", "is not an IP address"},
		{"a zone is refused", "fe80::1%eth0", "fe80::1%eth0", "has a zone"},
		{"a lone comma is refused, not read as blank", ",", ",", "has no entries"},
		{"commas and spaces alone are refused", " , ,", " , ,", "has no entries"},
		{"a bad entry after good ones is named", "port-eu, 192.0.2.1, nope", "nope", "is not an IP address"},
		{"spaces inside an entry are refused", "192.0.2.1 192.0.2.2", "192.0.2.1 192.0.2.2", "is not an IP address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := allowlist.Parse(tt.list)
			var ee *allowlist.EntryError
			if !errors.As(err, &ee) {
				t.Fatalf("Parse(%q) = %v, %v; want an *EntryError", tt.list, l, err)
			}
			if ee.Entry != tt.entry || !strings.Contains(err.Error(), tt.why) {
				t.Errorf("Parse(%q) = %q, want it to name %q and say %q", tt.list, err, tt.entry, tt.why)
			}
		})
	}
}

func TestZeroListAllowsEveryone(t *testing.T) {
	var l allowlist.List
	for _, a := range []netip.Addr{{}, netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")} {
		if !l.Allows(a) {
			t.Errorf("List{}.Allows(%v) = false, want true", a)
		}
	}
}

func TestZonedAddressIsRefused(t *testing.T) {
	l, err := allowlist.Parse("fe80::/10")
	if err != nil {
		t.Fatal(err)
	}
	if a := netip.MustParseAddr("fe80::1%eth0"); l.Allows(a) {
		t.Errorf("Allows(%v) = true, want false: API Gateway never gives a zone", a)
	}
}

// FuzzParse: whatever an operator types, Parse returns a list or an *EntryError;
// a list reads back as itself from its String, and allows the first and last
// address of each of its blocks.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"", " ", ",", "port-eu", "port-us,port-eu", "192.0.2.1", "192.0.2.0/24", "10.0.0.1/8", "2001:db8::/32",
		"::ffff:192.0.2.0/120", "::ffff:0:0/80", "fe80::1%eth0", "0.0.0.0/0", "::/0", "1.2.3.4 , 5.6.7.8", "::1.2.3.4",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := allowlist.Parse(s)
		if err != nil {
			var ee *allowlist.EntryError
			if !errors.As(err, &ee) {
				t.Fatalf("Parse(%q) = %v, want an *EntryError", s, err)
			}
			return
		}
		if l.Empty() != (strings.TrimSpace(s) == "") {
			t.Fatalf("Parse(%q).Empty() = %v for a non-blank list", s, l.Empty())
		}
		again, err := allowlist.Parse(l.String())
		if err != nil || again.String() != l.String() {
			t.Fatalf("Parse(Parse(%q).String() = %q) = %q, %v; want the same list", s, l.String(), again.String(), err)
		}
		if l.Allows(netip.Addr{}) && !l.Empty() {
			t.Fatalf("Parse(%q).Allows(invalid) = true, want false", s)
		}
		for _, c := range strings.Split(l.String(), ",") {
			if c == "" {
				continue
			}
			p := netip.MustParsePrefix(c)
			for _, end := range []netip.Addr{p.Addr(), lastAddr(p)} {
				// An IPv6 block does not take in IPv4 addresses, mapped or not.
				if !end.Is4In6() && !l.Allows(end) {
					t.Fatalf("Parse(%q) does not allow %s, an end of %s", s, end, p)
				}
			}
		}
	})
}

// lastAddr is the highest address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

func cidrs(addrs []string) string {
	out := make([]string, len(addrs))
	for i, a := range addrs {
		out[i] = a + "/32"
	}
	return strings.Join(out, ",")
}

func addr(t *testing.T, s string) netip.Addr {
	t.Helper()
	if s == "" {
		return netip.Addr{}
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
