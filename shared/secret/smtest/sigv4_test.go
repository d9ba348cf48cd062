package smtest_test

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/port-azure-relay/relay/shared/awstest"
)

// signing is how a request is signed; each test row changes one thing of a valid one.
type signing struct {
	accessKey, secretKey, region, service string
	at                                    time.Time
}

// TestTheServerChecksSignaturesLikeAWS signs raw requests with the SDK's own signer, the reference the
// server's independent SigV4 check must agree with, and tampers with them before or after signing.
func TestTheServerChecksSignaturesLikeAWS(t *testing.T) {
	const validBody = `{"SecretId":"relay/port"}`
	tests := []struct {
		name       string
		path       string // "/" when empty
		body       string // validBody when empty
		sign       func(*signing)
		before     func(*http.Request) // before signing
		after      func(*http.Request) // after signing, as a man in the middle would
		wantStatus int
		wantType   string // "" for success
	}{
		{name: "a request signed by the SDK passes", wantStatus: 200},
		{name: "a query string is signed in canonical order",
			path: "/?b=2&a=x%20y&a-b=%2F&a=1", wantStatus: 200},
		{name: "an escaped path is signed escaped twice",
			path: "/a%20b/c~d", wantStatus: 200},
		{name: "a header signed with repeated spaces passes",
			before:     func(r *http.Request) { r.Header.Set("X-Extra", "a  b   c") },
			wantStatus: 200},
		{name: "an unsigned header added after signing passes",
			after:      func(r *http.Request) { r.Header.Set("X-Extra", "added") },
			wantStatus: 200},
		{name: "a matching X-Amz-Content-Sha256 passes",
			before:     func(r *http.Request) { r.Header.Set("X-Amz-Content-Sha256", sha256Hex(validBody)) },
			wantStatus: 200},
		{name: "a body changed after signing fails",
			after:      func(r *http.Request) { setBody(r, `{"SecretId":"relay/xxxx"}`) },
			wantStatus: 403, wantType: "InvalidSignatureException"},
		{name: "a signed header changed after signing fails",
			before:     func(r *http.Request) { r.Header.Set("X-Extra", "signed") },
			after:      func(r *http.Request) { r.Header.Set("X-Extra", "changed") },
			wantStatus: 403, wantType: "InvalidSignatureException"},
		{name: "a wrong X-Amz-Content-Sha256 fails",
			before:     func(r *http.Request) { r.Header.Set("X-Amz-Content-Sha256", sha256Hex("other")) },
			wantStatus: 403, wantType: "InvalidSignatureException"},
		{name: "a wrong secret key fails",
			sign:       func(s *signing) { s.secretKey = "wrong" },
			wantStatus: 403, wantType: "InvalidSignatureException"},
		{name: "an unknown access key fails",
			sign:       func(s *signing) { s.accessKey = "AKIAOTHER" },
			wantStatus: 403, wantType: "UnrecognizedClientException"},
		{name: "another region fails",
			sign:       func(s *signing) { s.region = "eu-west-1" },
			wantStatus: 403, wantType: "InvalidSignatureException"},
		{name: "another service fails",
			sign:       func(s *signing) { s.service = "sts" },
			wantStatus: 403, wantType: "InvalidSignatureException"},
		{name: "a date 6 minutes old fails",
			sign:       func(s *signing) { s.at = s.at.Add(-6 * time.Minute) },
			wantStatus: 403, wantType: "InvalidSignatureException"},
		{name: "a date 6 minutes ahead fails",
			sign:       func(s *signing) { s.at = s.at.Add(6 * time.Minute) },
			wantStatus: 403, wantType: "InvalidSignatureException"},
		{name: "a date 4 minutes old passes",
			sign:       func(s *signing) { s.at = s.at.Add(-4 * time.Minute) },
			wantStatus: 200},
		{name: "a date changed after signing fails",
			after: func(r *http.Request) {
				r.Header.Set("X-Amz-Date", time.Now().UTC().Add(time.Second).Format("20060102T150405Z"))
			},
			wantStatus: 403, wantType: "InvalidSignatureException"},
		{name: "an unsigned host fails",
			after: func(r *http.Request) {
				r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), ";host;", ";", 1))
			},
			wantStatus: 403, wantType: "InvalidSignatureException"},
		{name: "a missing Authorization fails",
			after:      func(r *http.Request) { r.Header.Del("Authorization") },
			wantStatus: 403, wantType: "MissingAuthenticationTokenException"},
		{name: "an Authorization without a signature fails",
			after: func(r *http.Request) {
				auth, _, _ := strings.Cut(r.Header.Get("Authorization"), ", Signature=")
				r.Header.Set("Authorization", auth)
			},
			wantStatus: 403, wantType: "IncompleteSignatureException"},
		{name: "another algorithm fails",
			after: func(r *http.Request) {
				r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "HMAC-SHA256", "ECDSA-P256-SHA256", 1))
			},
			wantStatus: 403, wantType: "IncompleteSignatureException"},
		{name: "a missing X-Amz-Date fails",
			after:      func(r *http.Request) { r.Header.Del("X-Amz-Date") },
			wantStatus: 403, wantType: "IncompleteSignatureException"},
		{name: "an unknown operation fails",
			before:     func(r *http.Request) { r.Header.Set("X-Amz-Target", "secretsmanager.DescribeSecret") },
			wantStatus: 400, wantType: "UnknownOperationException"},
		{name: "a CBOR request fails",
			before:     func(r *http.Request) { r.Header.Set("Content-Type", "application/cbor") },
			wantStatus: 400, wantType: "UnknownOperationException"},
		{name: "a body that is not JSON fails",
			body:       `SecretId=relay/port`,
			wantStatus: 400, wantType: "SerializationException"},
		{name: "a body without SecretId fails",
			body:       `{}`,
			wantStatus: 400, wantType: "ValidationException"},
	}

	srv := newServer(t)
	srv.Put(secretName, "s3cret")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := tt.body
			if body == "" {
				body = validBody
			}
			req, err := http.NewRequest(http.MethodPost, srv.URL+cmp.Or(tt.path, "/"), strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/x-amz-json-1.1")
			req.Header.Set("X-Amz-Target", "secretsmanager.GetSecretValue")
			if tt.before != nil {
				tt.before(req)
			}
			s := signing{awstest.AccessKeyID, awstest.SecretAccessKey, awstest.Region, "secretsmanager", time.Now()}
			if tt.sign != nil {
				tt.sign(&s)
			}
			creds := aws.Credentials{AccessKeyID: s.accessKey, SecretAccessKey: s.secretKey}
			if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, sha256Hex(body), s.service, s.region, s.at); err != nil {
				t.Fatal(err)
			}
			if tt.after != nil {
				tt.after(req)
			}

			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var answer struct {
				Type         string `json:"__type"`
				Message      string `json:"message"`
				SecretString string
			}
			if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
				t.Fatalf("decoding the answer: %v", err)
			}
			if resp.StatusCode != tt.wantStatus || answer.Type != tt.wantType {
				t.Fatalf("POST = %d %s %q, want %d %s", resp.StatusCode, answer.Type, answer.Message, tt.wantStatus, tt.wantType)
			}
			if tt.wantType == "" && answer.SecretString != "s3cret" {
				t.Errorf("POST = %+v, want the secret", answer)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/x-amz-json-1.1" {
				t.Errorf("Content-Type = %q, want application/x-amz-json-1.1", ct)
			}
		})
	}
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func setBody(r *http.Request, body string) {
	r.Body = io.NopCloser(strings.NewReader(body))
	r.ContentLength = int64(len(body))
}
