package ledger

import (
	"crypto/sha256"
	"encoding/hex"
)

// The keys of deliveries, one per thing that must queue at most one run. None holds
// a secret or a payload.

// RunKey is a Port run's key: every invocation Port makes for one run, and every
// replay of it, carries the same run id.
func RunKey(runID string) string { return "run#" + runID }

// SignatureKey is the key of a Port invocation without a run id: its timestamp and a
// hash of the bytes its signature covered (the body as sent, or compacted when Port
// signed the compact form). Every container computes the same key whichever secret
// verified it (during a rotation the header carries a MAC for each, and containers
// may hold different ones), and neither entries added to the header nor whitespace
// added to the body change it.
func SignatureKey(timestamp string, covered []byte) string {
	h := sha256.New()
	h.Write([]byte(timestamp))
	h.Write([]byte{'.'})
	h.Write(covered)
	return "sig#" + timestamp + "#" + hex.EncodeToString(h.Sum(nil)[:16])
}

// EventKey is an AWS event's key: its top-level id, which EventBridge keeps across
// Lambda's retries (and which a schedule's input names: template.yaml's ScheduleInput).
func EventKey(id string) string { return "event#" + id }

// MaxIDLength bounds an id used in a key: DynamoDB's partition key is at most 2048 bytes.
const MaxIDLength = 1024
