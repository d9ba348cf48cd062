// Package allowlist says whether a source address may call a function: a list of
// IP addresses and CIDR blocks, read from operator input, with shorthands for Port's
// published egress addresses.
package allowlist

import (
	"fmt"
	"net/netip"
	"strings"
)

// Port's egress addresses: every webhook invocation of a self-service action or
// automation comes from one of them. The one copy in the code. Source: Port docs,
// "Security" (https://docs.port.io/actions-and-automations/setup-backend/security/),
// "Port IP addresses for allow lists"; also ../shared/reference/protocols.md,
// "Port → relay". Port's Ocean integration uses other addresses, not listed here:
// they do not call webhooks.
var shorthands = map[string][]string{
	"port-eu": {"3.251.12.205", "34.252.219.131", "54.75.236.107"},
	"port-us": {"44.221.30.248", "44.193.148.179", "34.197.132.205"},
}

// EntryError says which entry of a list is wrong, and why.
type EntryError struct {
	Entry string
	Why   string
}

func (e *EntryError) Error() string { return fmt.Sprintf("%q %s", e.Entry, e.Why) }

// List is a parsed allow list. Its zero value allows everyone.
type List struct {
	prefixes []netip.Prefix
}

// Parse reads a comma-separated list of IPv4 and IPv6 addresses, CIDR blocks and
// the shorthands port-eu and port-us. Spaces and empty entries are ignored (as in
// the webhook list); a blank list allows everyone, and a list of commas alone is
// refused rather than read as blank. A block is read as written, its host bits
// cleared: 10.0.0.1/8 is 10.0.0.0/8, as the template's pattern cannot tell them
// apart. An address with a zone is refused. IPv4-mapped IPv6 forms
// (::ffff:192.0.2.1) are read as the IPv4 they map.
func Parse(s string) (List, error) {
	if strings.TrimSpace(s) == "" {
		return List{}, nil
	}
	var l List
	for _, entry := range strings.Split(s, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		if addrs, ok := shorthands[entry]; ok {
			for _, a := range addrs {
				l.prefixes = append(l.prefixes, netip.PrefixFrom(netip.MustParseAddr(a), 32))
			}
			continue
		}
		p, err := parseEntry(entry)
		if err != nil {
			return List{}, err
		}
		l.prefixes = append(l.prefixes, p)
	}
	if l.Empty() {
		return List{}, &EntryError{s, "has no entries: leave it empty to let everyone in"}
	}
	return l, nil
}

func parseEntry(entry string) (netip.Prefix, error) {
	const want = "is not an IP address, a CIDR block, port-eu or port-us"
	switch {
	case strings.Contains(entry, "%"):
		return netip.Prefix{}, &EntryError{entry, "has a zone, which no caller's address has"}
	case !strings.Contains(entry, "/"):
		a, err := netip.ParseAddr(entry)
		if err != nil {
			return netip.Prefix{}, &EntryError{entry, want}
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(entry)
	if err != nil {
		return netip.Prefix{}, &EntryError{entry, want}
	}
	p = p.Masked()
	// ::ffff:192.0.2.0/120 is 192.0.2.0/24: Allows compares unmapped addresses.
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p, nil
}

// Empty reports whether the list allows everyone.
func (l List) Empty() bool { return len(l.prefixes) == 0 }

// Allows reports whether a may call. An empty list allows every caller, even one
// without a valid address; a list refuses an invalid address and one with a zone
// (fail closed).
func (l List) Allows(a netip.Addr) bool {
	if l.Empty() {
		return true
	}
	if !a.IsValid() {
		return false
	}
	a = a.Unmap()
	for _, p := range l.prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// String returns the list in canonical form, each entry as a CIDR block: what
// Parse reads back as the same list.
func (l List) String() string {
	parts := make([]string, len(l.prefixes))
	for i, p := range l.prefixes {
		parts[i] = p.String()
	}
	return strings.Join(parts, ",")
}
