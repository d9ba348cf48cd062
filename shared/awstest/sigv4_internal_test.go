package awstest

import (
	"strings"
	"testing"
)

func FuzzParseAuthorization(f *testing.F) {
	f.Add("AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/secretsmanager/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc")
	f.Add("AWS4-HMAC-SHA256 Credential=a/b/c/d/e,SignedHeaders=,Signature=")
	f.Add("AWS4-HMAC-SHA256 ")
	f.Fuzz(func(t *testing.T, h string) {
		a, err := parseAuthorization(h)
		if (a == nil) == (err == nil) {
			t.Fatalf("parseAuthorization(%q) = %v, %v, want exactly one", h, a, err)
		}
		if a != nil && (a.signature == "" || len(a.signedHeaders) == 0 || strings.Contains(a.accessKey, "/")) {
			t.Errorf("parseAuthorization(%q) = %+v", h, a)
		}
	})
}

func TestCanonicalQuerySortsAfterEncoding(t *testing.T) {
	// "a/b" sorts after "a-b" but "a%2Fb" sorts before it: AWS sorts the encoded form.
	if got, want := canonicalQuery("k=a-b&k=a%2Fb&j=x+y"), "j=x%20y&k=a%2Fb&k=a-b"; got != want {
		t.Errorf("canonicalQuery = %q, want %q", got, want)
	}
}
