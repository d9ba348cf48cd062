// Package signature signs and verifies webhook bodies the way Port and Azure DevOps do.
//
// Port signs what it sends with the Standard Webhooks scheme: x-port-timestamp holds
// the seconds since the epoch and x-port-signature holds one or more space-separated
// "v1,<base64 HMAC-SHA256(secret, timestamp + "." + body)>" entries. Azure DevOps
// checks an incoming webhook against "sha1=<hex HMAC-SHA1(secret, body)>" in the
// header named by its service connection.
package signature

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Header names and defaults of the two schemes.
const (
	PortSignatureHeader = "x-port-signature"
	PortTimestampHeader = "x-port-timestamp"
	// AzureDefaultHeader is the header Port's Azure guides name in the service connection.
	AzureDefaultHeader = "x-port-signature"
	DefaultTolerance   = 5 * time.Minute

	portVersion = "v1,"
	azurePrefix = "sha1="
)

// Errors returned by the verifiers. They say what is wrong without echoing the input.
var (
	ErrNoSecret        = errors.New("no signing secret configured")
	ErrNoSignature     = errors.New("signature missing")
	ErrMalformed       = errors.New("signature malformed")
	ErrMismatch        = errors.New("signature does not match")
	ErrNoTimestamp     = errors.New("timestamp missing")
	ErrBadTimestamp    = errors.New("timestamp is not whole seconds since the epoch")
	ErrTimestampTooOld = errors.New("timestamp too old")
	ErrTimestampTooNew = errors.New("timestamp in the future")
	ErrReplayed        = errors.New("signature already used")
)

// maxEntries bounds the work an attacker can ask for with a long signature header.
const maxEntries = 8

// Port verifies Port's v1 signatures. The zero value uses DefaultTolerance and the wall clock.
type Port struct {
	Tolerance time.Duration    // how far the timestamp may be from now, either way
	Now       func() time.Time // the clock; nil means time.Now
	// Replays, when set, refuses a signature it has accepted before, until its
	// timestamp leaves the tolerance: within one container, a captured request
	// cannot start a second run.
	Replays *Replays
}

// Replays remembers the signed Port requests accepted until their timestamps expire.
// The zero value is ready to use; it is safe for concurrent use.
type Replays struct {
	mu      sync.Mutex
	seen    map[uint64]time.Time // hash of timestamp and covered bytes → when the timestamp leaves the tolerance
	inserts int
}

var replaySeed = maphash.MakeSeed()

// maxReplays bounds the memory a burst of valid requests can take (about 2 MB);
// past it, new signatures are not remembered until old ones expire.
const maxReplays = 20000

// First records the signed request until its timestamp expires and reports whether
// it is the first time it is seen. It knows a request by its timestamp and the bytes
// the signature covered, not by the MAC that matched: during a rotation of Port's
// secret the same request matches another MAC once the container reads the new value.
func (r *Replays) First(s Signed, now time.Time) bool {
	var h maphash.Hash // seeded at random per process: a cheap key no caller can aim at
	h.SetSeed(replaySeed)
	h.WriteString(s.Timestamp)
	h.WriteByte('.')
	h.Write(s.Covered)
	key := h.Sum64()
	expires := s.Expires
	r.mu.Lock()
	defer r.mu.Unlock()
	if until, ok := r.seen[key]; ok && now.Before(until) {
		return false
	}
	if r.seen == nil {
		r.seen = make(map[uint64]time.Time)
	}
	if r.inserts++; r.inserts%1024 == 0 || len(r.seen) >= maxReplays {
		for k, until := range r.seen {
			if !now.Before(until) {
				delete(r.seen, k)
			}
		}
	}
	if len(r.seen) < maxReplays {
		r.seen[key] = expires
	}
	return true
}

// SignPort returns the x-port-signature value Port sends for body at timestamp ts.
func SignPort(secret []byte, ts int64, body []byte) string {
	return portVersion + base64.StdEncoding.EncodeToString(portMAC(secret, strconv.FormatInt(ts, 10), body))
}

// Signed is a Port signature that verified: the timestamp as signed, the bytes the
// MAC covered (the body as sent, or compacted), the MAC that matched and when the
// timestamp leaves the tolerance. The MAC names the invocation: a replay carries the
// same one, whatever other entries the header gains and whatever whitespace the body.
type Signed struct {
	Timestamp string
	Covered   []byte
	MAC       []byte
	Expires   time.Time
}

// Verify checks header (the x-port-signature value) and timestamp (the x-port-timestamp
// value) against body. It accepts the body as sent and, failing that, the body
// compacted: Port's agent signs compact JSON and sends it indented. With Replays set,
// a signature it has accepted before is ErrReplayed.
func (p Port) Verify(secret []byte, header, timestamp string, body []byte) error {
	signed, err := p.Verified(secret, header, timestamp, body)
	if err == nil && !p.FirstHere(signed) {
		return ErrReplayed
	}
	return err
}

// Verified is Verify that returns what verified, and does not consult Replays: a
// caller with a memory of its own (a ledger) decides what a repeat means.
func (p Port) Verified(secret []byte, header, timestamp string, body []byte) (Signed, error) {
	if len(secret) == 0 {
		return Signed{}, ErrNoSecret
	}
	macs, err := parsePort(header)
	if err != nil {
		return Signed{}, err
	}
	ts, expires, err := p.checkTimestamp(timestamp)
	if err != nil {
		return Signed{}, err
	}
	covered := body
	mac := portMAC(secret, ts, body)
	if !anyEqual(macs, mac) {
		var compact bytes.Buffer
		if json.Compact(&compact, body) != nil || bytes.Equal(compact.Bytes(), body) {
			return Signed{}, ErrMismatch
		}
		if covered, mac = compact.Bytes(), portMAC(secret, ts, compact.Bytes()); !anyEqual(macs, mac) {
			return Signed{}, ErrMismatch
		}
	}
	return Signed{Timestamp: ts, Covered: covered, MAC: mac, Expires: expires}, nil
}

// FirstHere reports whether this is the first time p's Replays (the container's
// memory) sees the signature, and remembers it; true without Replays.
func (p Port) FirstHere(s Signed) bool {
	return p.Replays == nil || p.Replays.First(s, p.now())
}

func (p Port) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

// checkTimestamp returns the timestamp as signed and when it leaves the tolerance.
func (p Port) checkTimestamp(value string) (string, time.Time, error) {
	value = strings.TrimSpace(value)
	if value == "" {
		return "", time.Time{}, ErrNoTimestamp
	}
	secs, err := strconv.ParseInt(value, 10, 64)
	if err != nil || secs < 0 || len(value) > 12 {
		// More than 12 digits is milliseconds (or worse): say so rather than "too new".
		return "", time.Time{}, ErrBadTimestamp
	}
	tolerance := p.Tolerance
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	// Compared as whole seconds and nanoseconds, never as a time.Duration between the
	// two times: a timestamp centuries ahead would saturate now.Sub(signed), and its
	// negation overflow, so that it passed the check and never expired.
	now := p.now()
	tolSecs, tolNanos := int64(tolerance/time.Second), int64(tolerance%time.Second)
	nowSecs, nowNanos := now.Unix(), int64(now.Nanosecond())
	switch {
	case later(nowSecs, nowNanos, secs+tolSecs, tolNanos): // now > signed + tolerance
		return "", time.Time{}, fmt.Errorf("%w: %s old, tolerance %s", ErrTimestampTooOld, seconds(nowSecs-secs), tolerance)
	case later(secs, 0, nowSecs+tolSecs+(nowNanos+tolNanos)/1e9, (nowNanos+tolNanos)%1e9): // signed > now + tolerance
		return "", time.Time{}, fmt.Errorf("%w: %s ahead, tolerance %s", ErrTimestampTooNew, seconds(secs-nowSecs), tolerance)
	}
	signed := time.Unix(secs, 0)
	return value, signed.Add(tolerance), nil
}

// later reports whether the instant (secs, nanos) comes after (secs2, nanos2);
// nanos are in [0, 1e9).
func later(secs, nanos, secs2, nanos2 int64) bool {
	return secs > secs2 || secs == secs2 && nanos > nanos2
}

// seconds writes a whole number of seconds as a duration, or in seconds when it is
// too long for one (past 292 years).
func seconds(n int64) string {
	if n > -math.MaxInt64/int64(time.Second) && n < math.MaxInt64/int64(time.Second) {
		return (time.Duration(n) * time.Second).String()
	}
	return strconv.FormatInt(n, 10) + "s"
}

// parsePort decodes the v1 entries of a signature header. Entries of other
// versions are skipped, as Standard Webhooks asks, and so are v1 entries that are
// not a base64 HMAC-SHA256 when another one is: any match passes. A header with no
// well-formed v1 entry at all is malformed.
func parsePort(header string) ([][]byte, error) {
	header = strings.TrimSpace(header)
	if header == "" {
		return nil, ErrNoSignature
	}
	var macs [][]byte
	badV1 := false
	for i, entry := range strings.Fields(header) {
		if i == maxEntries {
			return nil, fmt.Errorf("%w: more than %d entries", ErrMalformed, maxEntries)
		}
		b64, ok := strings.CutPrefix(entry, portVersion)
		if !ok {
			continue
		}
		mac, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || len(mac) != sha256.Size {
			badV1 = true
			continue
		}
		macs = append(macs, mac)
	}
	switch {
	case len(macs) > 0:
		return macs, nil
	case badV1:
		return nil, fmt.Errorf("%w: v1 entry is not a base64 HMAC-SHA256", ErrMalformed)
	default:
		return nil, fmt.Errorf("%w: no v1 entry", ErrMalformed)
	}
}

func portMAC(secret []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

func anyEqual(macs [][]byte, want []byte) bool {
	match := false
	for _, mac := range macs {
		match = hmac.Equal(mac, want) || match // compare every entry: no early exit to time
	}
	return match
}

// SignAzure returns the header value Azure DevOps checks: "sha1=" and the lowercase
// hex HMAC-SHA1 of exactly body.
func SignAzure(secret, body []byte) string {
	return azurePrefix + hex.EncodeToString(azureMAC(secret, body))
}

// VerifyAzure checks a header value as Azure DevOps does: an optional "sha1=" prefix
// in any case, then hex in any case.
func VerifyAzure(secret []byte, header string, body []byte) error {
	if len(secret) == 0 {
		return ErrNoSecret
	}
	header = strings.TrimSpace(header)
	if header == "" {
		return ErrNoSignature
	}
	if len(header) >= len(azurePrefix) && strings.EqualFold(header[:len(azurePrefix)], azurePrefix) {
		header = header[len(azurePrefix):]
	}
	mac, err := hex.DecodeString(header)
	if err != nil || len(mac) != sha1.Size {
		return fmt.Errorf("%w: not a hex HMAC-SHA1", ErrMalformed)
	}
	if !hmac.Equal(mac, azureMAC(secret, body)) {
		return ErrMismatch
	}
	return nil
}

func azureMAC(secret, body []byte) []byte {
	m := hmac.New(sha1.New, secret)
	m.Write(body)
	return m.Sum(nil)
}
