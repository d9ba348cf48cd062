package allowlist_test

import (
	"fmt"
	"net/netip"

	"github.com/port-azure-relay/relay/shared/allowlist"
)

func ExampleParse() {
	l, err := allowlist.Parse("port-eu, 192.0.2.0/28")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(l.Allows(netip.MustParseAddr("34.252.219.131"))) // Port, EU
	fmt.Println(l.Allows(netip.MustParseAddr("192.0.2.15")))     // the block's last address
	fmt.Println(l.Allows(netip.MustParseAddr("192.0.2.16")))     // just outside it

	_, err = allowlist.Parse("port-asia")
	fmt.Println(err)
	// Output:
	// true
	// true
	// false
	// "port-asia" is not an IP address, a CIDR block, port-eu or port-us
}
