package signature_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math/big"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/port-azure-relay/relay/shared/signature"
)

// vector is one known answer of docs/protocols.md, stored in testdata/vectors.json.
type vector struct {
	Name      string `json:"name"`
	Scheme    string `json:"scheme"` // "azure-sha1" or "port-v1"
	Key       string `json:"key"`
	Timestamp string `json:"timestamp"`
	Body      string `json:"body"`
	Want      string `json:"want"`
}

func loadVectors(tb testing.TB) []vector {
	tb.Helper()
	raw, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		tb.Fatal(err)
	}
	var vs []vector
	if err := json.Unmarshal(raw, &vs); err != nil {
		tb.Fatalf("testdata/vectors.json: %v", err)
	}
	if len(vs) == 0 {
		tb.Fatal("testdata/vectors.json holds no vectors")
	}
	return vs
}

// agentVector is Port's agent fixture: signed compact, 825 bytes.
func agentVector(tb testing.TB) vector {
	tb.Helper()
	for _, v := range loadVectors(tb) {
		if v.Scheme == "port-v1" && strings.Contains(v.Name, "agent") {
			if len(v.Body) != 825 {
				tb.Fatalf("agent fixture body is %d bytes, want 825", len(v.Body))
			}
			return v
		}
	}
	tb.Fatal("no agent fixture in testdata/vectors.json")
	return vector{}
}

// at returns a Port verifier whose clock reads the Unix time ts (a decimal string).
func at(tb testing.TB, ts string) signature.Port {
	tb.Helper()
	secs, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		tb.Fatalf("timestamp %q: %v", ts, err)
	}
	return signature.Port{Now: fixedClock(time.Unix(secs, 0))}
}

func ptr(s string) *string { return &s }

func fixedClock(t time.Time) func() time.Time { return func() time.Time { return t } }

func TestVectors(t *testing.T) {
	for _, v := range loadVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			key, body := []byte(v.Key), []byte(v.Body)
			switch v.Scheme {
			case "azure-sha1":
				if got := signature.SignAzure(key, body); got != v.Want {
					t.Errorf("SignAzure(%q) = %q, want %q", v.Body, got, v.Want)
				}
				if err := signature.VerifyAzure(key, v.Want, body); err != nil {
					t.Errorf("VerifyAzure(%q) = %v, want nil", v.Want, err)
				}
			case "port-v1":
				ts, err := strconv.ParseInt(v.Timestamp, 10, 64)
				if err != nil {
					t.Fatalf("timestamp %q: %v", v.Timestamp, err)
				}
				if got := signature.SignPort(key, ts, body); got != v.Want {
					t.Errorf("SignPort(%q) = %q, want %q", v.Body, got, v.Want)
				}
				if err := at(t, v.Timestamp).Verify(key, v.Want, v.Timestamp, body); err != nil {
					t.Errorf("Verify(%q) = %v, want nil", v.Want, err)
				}
			default:
				t.Fatalf("unknown scheme %q", v.Scheme)
			}
		})
	}
}

func TestPortVerifyCompactFallback(t *testing.T) {
	v := agentVector(t)
	key, p := []byte(v.Key), at(t, v.Timestamp)

	var pretty bytes.Buffer
	if err := json.Indent(&pretty, []byte(v.Body), "", "  "); err != nil {
		t.Fatal(err)
	}
	t.Run("the agent fixture sent indented verifies against its compact form", func(t *testing.T) {
		if err := p.Verify(key, v.Want, v.Timestamp, pretty.Bytes()); err != nil {
			t.Errorf("Verify(%q) = %v, want nil", v.Want, err)
		}
	})
	t.Run("an indented body signed over other bytes fails", func(t *testing.T) {
		// The compact form differs from what was sent, and the signature is for neither.
		other := signature.SignPort(key, 1713277889, []byte(`{"action":"Delete"}`))
		if err := p.Verify(key, other, v.Timestamp, pretty.Bytes()); !errors.Is(err, signature.ErrMismatch) {
			t.Errorf("Verify(%q) = %v, want %v", other, err, signature.ErrMismatch)
		}
	})
	t.Run("an indented body whose compact form was changed fails", func(t *testing.T) {
		changed := bytes.Replace(pretty.Bytes(), []byte(`"Create"`), []byte(`"Delete"`), 1)
		if err := p.Verify(key, v.Want, v.Timestamp, changed); !errors.Is(err, signature.ErrMismatch) {
			t.Errorf("Verify(%q) = %v, want %v", v.Want, err, signature.ErrMismatch)
		}
	})
	t.Run("a body that is not JSON gets no fallback", func(t *testing.T) {
		body := []byte("not json " + v.Body)
		if err := p.Verify(key, v.Want, v.Timestamp, body); !errors.Is(err, signature.ErrMismatch) {
			t.Errorf("Verify(%q) = %v, want %v", v.Want, err, signature.ErrMismatch)
		}
	})
}

func TestPortVerify(t *testing.T) {
	const ts = "1700000000"
	secret := []byte("whsec")
	body := []byte(`{"port_context":{"runId":"r_1"}}`)
	good := signature.SignPort(secret, 1700000000, body)
	otherKey := signature.SignPort([]byte("another"), 1700000000, body)
	now := time.Unix(1700000000, 0)
	mac := strings.TrimPrefix(good, "v1,")
	raw, _ := base64.StdEncoding.DecodeString(mac)

	tests := []struct {
		name      string
		secret    []byte // nil: the fixture's
		header    string
		timestamp *string   // nil: the signed one
		now       time.Time // zero: the signed time
		tolerance time.Duration
		want      error
	}{
		{name: "a valid signature verifies", header: good},
		{name: "an empty secret fails closed", secret: []byte{}, header: good, want: signature.ErrNoSecret},
		{name: "a missing header is no signature", header: "", want: signature.ErrNoSignature},
		{name: "a blank header is no signature", header: "   ", want: signature.ErrNoSignature},
		{name: "a header of another scheme only is malformed", header: "v2," + mac, want: signature.ErrMalformed},
		{name: "a header without the version is malformed", header: mac, want: signature.ErrMalformed},
		{name: "a v1 entry that is not base64 is malformed", header: "v1,not*base64!", want: signature.ErrMalformed},
		{name: "a v1 entry with URL-safe base64 is malformed", header: "v1," + base64.URLEncoding.EncodeToString(raw) + "-_", want: signature.ErrMalformed},
		{name: "a truncated MAC is malformed", header: "v1," + base64.StdEncoding.EncodeToString(raw[:31]), want: signature.ErrMalformed},
		{name: "an empty v1 entry is malformed", header: "v1,", want: signature.ErrMalformed},
		{name: "a signature with another key does not match", header: otherKey, want: signature.ErrMismatch},
		{name: "several entries with none matching do not match", header: otherKey + " " + otherKey, want: signature.ErrMismatch},
		{name: "several entries with the last one matching verify", header: otherKey + " " + otherKey + " " + good},
		{name: "several entries with the first one matching verify", header: good + " " + otherKey},
		{name: "entries of other versions beside a match are skipped", header: "v2,abc " + good},
		{name: "a malformed v1 entry beside a match is skipped", header: "v1,not*base64! " + good},
		{name: "a truncated v1 entry beside a match is skipped", header: good + " " + good[:20]},
		{name: "a malformed v1 entry beside one that does not match does not match", header: "v1,not*base64! " + otherKey, want: signature.ErrMismatch},
		{name: "entries separated by tabs and spaces verify", header: otherKey + " \t " + good},
		{name: "eight entries are accepted", header: strings.Repeat(otherKey+" ", 7) + good},
		{name: "more than eight entries are malformed", header: strings.Repeat(otherKey+" ", 8) + good, want: signature.ErrMalformed},
		{name: "a missing timestamp is refused", header: good, timestamp: ptr(""), want: signature.ErrNoTimestamp},
		{name: "a blank timestamp is refused", header: good, timestamp: ptr(" "), want: signature.ErrNoTimestamp},
		{name: "a non-numeric timestamp is bad", header: good, timestamp: ptr("yesterday"), want: signature.ErrBadTimestamp},
		{name: "a fractional timestamp is bad", header: good, timestamp: ptr(ts + ".5"), want: signature.ErrBadTimestamp},
		{name: "a negative timestamp is bad", header: good, timestamp: ptr("-1700000000"), want: signature.ErrBadTimestamp},
		{name: "a timestamp in milliseconds is bad", header: good, timestamp: ptr(ts + "000"), now: now, want: signature.ErrBadTimestamp},
		{name: "a timestamp past int64 is bad", header: good, timestamp: ptr("99999999999999999999"), want: signature.ErrBadTimestamp},
		{name: "a timestamp with surrounding space verifies", header: good, timestamp: ptr(" " + ts + " ")},
		{name: "a timestamp other than the signed one does not match", header: good, timestamp: ptr("1700000001"), want: signature.ErrMismatch},
		{name: "a timestamp older than the tolerance is too old", header: good, now: now.Add(signature.DefaultTolerance + time.Second), want: signature.ErrTimestampTooOld},
		{name: "a timestamp newer than the tolerance is too new", header: good, now: now.Add(-signature.DefaultTolerance - time.Second), want: signature.ErrTimestampTooNew},
		{name: "a timestamp exactly the tolerance old verifies", header: good, now: now.Add(signature.DefaultTolerance)},
		{name: "a timestamp exactly the tolerance ahead verifies", header: good, now: now.Add(-signature.DefaultTolerance)},
		{name: "a timestamp a nanosecond past the tolerance is too old", header: good, now: now.Add(signature.DefaultTolerance + 1), want: signature.ErrTimestampTooOld},
		{name: "a timestamp a nanosecond ahead of the tolerance is too new", header: good, now: now.Add(-signature.DefaultTolerance - 1), want: signature.ErrTimestampTooNew},
		{name: "a timestamp centuries ahead is too new, not saturated into the tolerance", header: signature.SignPort(secret, 20000000000, body), timestamp: ptr("20000000000"), want: signature.ErrTimestampTooNew},
		{name: "the largest timestamp of 12 digits is too new", header: signature.SignPort(secret, 999999999999, body), timestamp: ptr("999999999999"), want: signature.ErrTimestampTooNew},
		{name: "the epoch is too old", header: signature.SignPort(secret, 0, body), timestamp: ptr("0"), want: signature.ErrTimestampTooOld},
		{name: "a timestamp ahead by a wide tolerance, less a second, verifies", header: signature.SignPort(secret, 1700000000+86399, body), timestamp: ptr("1700086399"), tolerance: 24 * time.Hour},
		{name: "a zero tolerance means the default tolerance", header: good, tolerance: 0, now: now.Add(signature.DefaultTolerance)},
		{name: "a negative tolerance means the default tolerance", header: good, tolerance: -time.Hour, now: now.Add(signature.DefaultTolerance)},
		{name: "a set tolerance replaces the default", header: good, tolerance: time.Minute, now: now.Add(2 * time.Minute), want: signature.ErrTimestampTooOld},
		{name: "a set tolerance can be wider than the default", header: good, tolerance: time.Hour, now: now.Add(30 * time.Minute)},
		{name: "a missing signature is reported before a missing timestamp", header: "", timestamp: ptr(""), want: signature.ErrNoSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.secret == nil {
				tt.secret = secret
			}
			timestamp := ts
			if tt.timestamp != nil {
				timestamp = *tt.timestamp
			}
			if tt.now.IsZero() {
				tt.now = now
			}
			p := signature.Port{Tolerance: tt.tolerance, Now: fixedClock(tt.now)}
			err := p.Verify(tt.secret, tt.header, timestamp, body)
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Errorf("Verify(%q, %q) = %v, want %v", tt.header, timestamp, err, tt.want)
			}
		})
	}
}

// FuzzTimestampTolerance checks the tolerance against exact arithmetic (math/big,
// in nanoseconds) for any timestamp, clock and tolerance, the extremes included: a
// signature verifies exactly when its timestamp is within the tolerance of now.
func FuzzTimestampTolerance(f *testing.F) {
	for _, s := range [][4]int64{
		{1700000000, 1700000000, 0, 300},
		{20000000000, 1700000000, 0, 300},
		{999999999999, 1700000000, 0, 300},
		{999999999999, -1 << 62, 999999999, 1 << 62},
		{0, 1 << 62, 0, 1},
		{1700000300, 1700000000, 1, 300},
		{1699999700, 1700000000, 1, 300},
	} {
		f.Add(s[0], s[1], s[2], s[3])
	}
	secret, body := []byte("test"), []byte(`{}`)
	billion := big.NewInt(1e9)
	nanos := func(secs, ns int64) *big.Int {
		return new(big.Int).Add(new(big.Int).Mul(big.NewInt(secs), billion), big.NewInt(ns))
	}
	f.Fuzz(func(t *testing.T, ts, nowSecs, nowNanos, tolerance int64) {
		ts, nowNanos = ts%1_000_000_000_000, nowNanos%1e9 // 12 digits at most: more is refused as milliseconds
		if ts < 0 || nowNanos < 0 || tolerance <= 0 {
			return
		}
		nowSecs = max(min(nowSecs, 1<<40), -(1 << 40)) // time.Unix's range, far past any real clock
		now := time.Unix(nowSecs, nowNanos)
		p := signature.Port{Tolerance: time.Duration(tolerance), Now: fixedClock(now)}
		stamp := strconv.FormatInt(ts, 10)
		err := p.Verify(secret, signature.SignPort(secret, ts, body), stamp, body)

		signed, at, tol := nanos(ts, 0), nanos(nowSecs, nowNanos), big.NewInt(tolerance)
		var want error
		switch {
		case at.Cmp(new(big.Int).Add(signed, tol)) > 0:
			want = signature.ErrTimestampTooOld
		case signed.Cmp(new(big.Int).Add(at, tol)) > 0:
			want = signature.ErrTimestampTooNew
		}
		if !errors.Is(err, want) || (want == nil && err != nil) {
			t.Errorf("Verify at %d with timestamp %s, tolerance %d = %v, want %v", now.UnixNano(), stamp, tolerance, err, want)
		}
	})
}

func TestPortVerifyWallClock(t *testing.T) {
	secret, body := []byte("whsec"), []byte(`{}`)
	now := time.Now().Unix()
	ts := strconv.FormatInt(now, 10)
	header := signature.SignPort(secret, now, body)
	var p signature.Port // Now nil: the wall clock
	if err := p.Verify(secret, header, ts, body); err != nil {
		t.Errorf("Verify(%q) = %v, want nil", header, err)
	}
	old := now - int64((signature.DefaultTolerance+time.Minute)/time.Second)
	header = signature.SignPort(secret, old, body)
	if err := p.Verify(secret, header, strconv.FormatInt(old, 10), body); !errors.Is(err, signature.ErrTimestampTooOld) {
		t.Errorf("Verify(%q) = %v, want %v", header, err, signature.ErrTimestampTooOld)
	}
}

func TestSignPort(t *testing.T) {
	secret, body := []byte("whsec"), []byte(`{"a":1}`)
	got := signature.SignPort(secret, 1700000000, body)
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("1700000000." + string(body)))
	want := "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
	if got != want {
		t.Errorf("SignPort(%q) = %q, want %q", body, got, want)
	}
}

func TestSignAzure(t *testing.T) {
	secret, body := []byte("secret"), []byte(`{"a":"<b>&"}`)
	got := signature.SignAzure(secret, body)
	m := hmac.New(sha1.New, secret)
	m.Write(body)
	want := "sha1=" + hex.EncodeToString(m.Sum(nil))
	if got != want {
		t.Errorf("SignAzure(%q) = %q, want %q", body, got, want)
	}
}

func TestVerifyAzure(t *testing.T) {
	secret := []byte("secret")
	body := []byte(`{"resource":{"message":{"title":"Hello, world!","subtitle":"I'm using WebHooks!"}}}`)
	const hexMAC = "750d33212d3ad4932cc390819050734831a0a94f"

	tests := []struct {
		name   string
		secret *string // nil: the fixture's
		header string
		want   error
	}{
		{name: "a sha1= prefix and lowercase hex verify", header: "sha1=" + hexMAC},
		{name: "an upper-case SHA1= prefix verifies", header: "SHA1=" + hexMAC},
		{name: "a mixed-case Sha1= prefix verifies", header: "Sha1=" + hexMAC},
		{name: "bare hex verifies", header: hexMAC},
		{name: "upper-case hex verifies", header: "sha1=" + strings.ToUpper(hexMAC)},
		{name: "surrounding space is ignored", header: "  sha1=" + hexMAC + " "},
		{name: "an empty secret fails closed", secret: ptr(""), header: "sha1=" + hexMAC, want: signature.ErrNoSecret},
		{name: "an empty header is no signature", header: "", want: signature.ErrNoSignature},
		{name: "a prefix alone is malformed", header: "sha1=", want: signature.ErrMalformed},
		{name: "a short hex is malformed", header: "sha1=" + hexMAC[:38], want: signature.ErrMalformed},
		{name: "a long hex is malformed", header: "sha1=" + hexMAC + "00", want: signature.ErrMalformed},
		{name: "an odd-length hex is malformed", header: "sha1=" + hexMAC[:39], want: signature.ErrMalformed},
		{name: "a SHA-256 hex is malformed", header: "sha256=" + hexMAC + hexMAC[:24], want: signature.ErrMalformed},
		{name: "a non-hex digit is malformed", header: "sha1=" + hexMAC[:39] + "g", want: signature.ErrMalformed},
		{name: "a doubled prefix is malformed", header: "sha1=sha1=" + hexMAC, want: signature.ErrMalformed},
		{name: "a base64 MAC is malformed", header: "sha1=dQ0zIS0trZMsw5CBkFBzSDGgqU8=", want: signature.ErrMalformed},
		{name: "another MAC does not match", header: "sha1=" + strings.Repeat("0", 40), want: signature.ErrMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := secret
			if tt.secret != nil {
				key = []byte(*tt.secret)
			}
			err := signature.VerifyAzure(key, tt.header, body)
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Errorf("VerifyAzure(%q) = %v, want %v", tt.header, err, tt.want)
			}
		})
	}
	t.Run("a changed body does not match", func(t *testing.T) {
		changed := append([]byte(nil), body...)
		changed[len(changed)-3] = ' '
		if err := signature.VerifyAzure(secret, "sha1="+hexMAC, changed); !errors.Is(err, signature.ErrMismatch) {
			t.Errorf("VerifyAzure(%q) = %v, want %v", "sha1="+hexMAC, err, signature.ErrMismatch)
		}
	})
}

// FuzzPortVerify fuzzes the two headers Port sends against a fixed secret and body.
// Verify must never panic and must accept only a header holding the real MAC of the
// timestamp as given.
func FuzzPortVerify(f *testing.F) {
	secret := []byte("test")
	body := []byte(`{"port_context":{"runId":"r_abc"},"name":"<svc>&é"}`)
	const now = 1700000000
	good := signature.SignPort(secret, now, body)
	mac := strings.TrimPrefix(good, "v1,")
	seeds := [][2]string{
		{good, "1700000000"},
		{"v1,vP64bIauDZkvB3Um7fP5jVuQ7aaq/0xKztLlzeT91ts=", "1700000000"},
		{"v1,uuBMfcio3oscejO5bOtL97K1AmiZjxDvou7sChjMNeE=", "1713277889"},
		{"v2," + mac + " " + good, "1700000000"},
		{strings.Repeat(good+" ", 9), "1700000000"},
		{"v1," + mac[:20], "1700000000"},
		{"v1,", ""},
		{"", ""},
		{"v1,,,, v1,=== v1", "-0"},
		{good, "+1700000000"},
		{good, "01700000000"},
		{good, "1700000000000"},
		{good, " 1700000000\n"},
		{"\x00v1,\xff", "\xff"},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1])
	}
	p := signature.Port{Now: fixedClock(time.Unix(now, 0))}
	f.Fuzz(func(t *testing.T, header, timestamp string) {
		err := p.Verify(secret, header, timestamp, body)
		if err != nil {
			return
		}
		m := hmac.New(sha256.New, secret)
		m.Write([]byte(strings.TrimSpace(timestamp) + "."))
		m.Write(body)
		want := m.Sum(nil)
		for _, entry := range strings.Fields(header) {
			b64, ok := strings.CutPrefix(entry, "v1,")
			if !ok {
				continue
			}
			if got, err := base64.StdEncoding.DecodeString(b64); err == nil && hmac.Equal(got, want) {
				return
			}
		}
		t.Errorf("Verify(%q, %q) = nil, but no v1 entry holds the real MAC", header, timestamp)
	})
}

func TestReplaysAcceptASignatureOnce(t *testing.T) {
	secret, body := []byte("replay-secret"), []byte(`{"port_context":{"runId":"r_1"}}`)
	now := time.Unix(1764201600, 0)
	p := signature.Port{Now: func() time.Time { return now }, Replays: &signature.Replays{}}
	header, ts := signature.SignPort(secret, now.Unix(), body), strconv.FormatInt(now.Unix(), 10)

	if err := p.Verify(secret, header, ts, body); err != nil {
		t.Fatalf("first Verify = %v, want nil", err)
	}
	for name, h := range map[string]string{
		"the same header":                 header,
		"the same signature among others": "v1,AAAA " + header,
	} {
		if err := p.Verify(secret, h, ts, body); !errors.Is(err, signature.ErrReplayed) {
			t.Errorf("Verify(%s) again = %v, want ErrReplayed", name, err)
		}
	}
	other := []byte(`{"port_context":{"runId":"r_2"}}`)
	if err := p.Verify(secret, signature.SignPort(secret, now.Unix(), other), ts, other); err != nil {
		t.Errorf("Verify(another body) = %v, want nil", err)
	}
	if err := (signature.Port{Now: p.Now}).Verify(secret, header, ts, body); err != nil {
		t.Errorf("Verify without Replays = %v, want nil: only a verifier that remembers refuses", err)
	}
}

func TestReplaysUnderConcurrency(t *testing.T) {
	secret, body := []byte("replay-secret"), []byte(`{"a":1}`)
	now := time.Unix(1764201600, 0)
	p := signature.Port{Now: func() time.Time { return now }, Replays: &signature.Replays{}}
	header, ts := signature.SignPort(secret, now.Unix(), body), strconv.FormatInt(now.Unix(), 10)
	var accepted atomic.Int32
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if p.Verify(secret, header, ts, body) == nil {
				accepted.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := accepted.Load(); n != 1 {
		t.Errorf("%d of 50 concurrent identical requests accepted, want 1", n)
	}
}
