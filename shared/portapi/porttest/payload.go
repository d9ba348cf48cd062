package porttest

import (
	"bytes"
	"fmt"
	"strings"
)

// RunID is the run id in every Payload.
const RunID = "r_QbnsJxeGVOxVjKfD"

// Payload returns a compact body of exactly size bytes (at least 512) shaped like
// what a Port action sends: port_context with RunID, then a list of catalog entities
// with properties and relations, with the <, > and & that JSON.stringify leaves
// alone. Benchmarks use it to see how each step grows with the body.
func Payload(size int) []byte {
	const head = `{"service":"billing","environment":"production","port_context":{"entity":"billing","blueprint":"service","runId":"` + RunID + `","trigger":{"by":{"userId":"u_1","orgId":"org_1"},"origin":"UI","at":"2025-01-01T00:00:00.000Z"}},"items":[`
	const tail = `],"note":"`
	if size < 512 {
		panic(fmt.Sprintf("porttest: Payload(%d): want at least 512 bytes", size))
	}
	var b bytes.Buffer
	b.Grow(size)
	b.WriteString(head)
	for i := 0; ; i++ {
		item := fmt.Sprintf(`{"identifier":"svc-%d","title":"Service %d <prod> & co","properties":{"language":"go","replicas":%d,"healthy":true,"url":"https://svc-%d.example.com/api?x=1&y=2"},"relations":{"team":"team-%d","domain":["payments","ledger"]}}`, i, i, i%7, i, i%13)
		if i > 0 {
			item = "," + item
		}
		if b.Len()+len(item)+len(tail)+len(`"}`) > size {
			break
		}
		b.WriteString(item)
	}
	b.WriteString(tail)
	b.WriteString(strings.Repeat("x", size-b.Len()-len(`"}`)))
	b.WriteString(`"}`)
	return b.Bytes()
}
