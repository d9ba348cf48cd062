// Package awstest is what the local stand-ins for AWS services share (Secrets Manager's
// smtest, DynamoDB's, STS's): one test account with one long-term key, requests checked
// with Signature Version 4 as AWS checks them (from AWS's specification, not the SDK's
// signer), and the environment that points a function's real SDK at a stand-in.
//
// It is the one stand-in without a production package beside it: it stands in for
// AWS's common wire (SigV4, error shapes), which every AWS stand-in speaks. Nothing
// in a function imports it.
package awstest

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
	"time"
)

// The only credentials, region and account the stand-ins accept. Requests must be signed with them.
const (
	AccessKeyID     = "AKIASMTESTEXAMPLE123"
	SecretAccessKey = "smtest/K7MDENG/bPxRfiCYEXAMPLEKEY"
	Region          = "us-east-1"
	AccountID       = "123456789012"
)

// MaxClockSkew is how far X-Amz-Date may be from the server's clock, as AWS allows.
const MaxClockSkew = 5 * time.Minute

// Error is an AWS error: the HTTP status, the error code (the SDK's ErrorCode) and the message.
// Each protocol writes it in its own shape (JSON 1.0 and 1.1: "__type"; Query: XML).
type Error struct {
	Status  int
	Code    string
	Message string
}

// NewError returns the error AWS answers with status, code and message.
func NewError(status int, code, message string) *Error {
	return &Error{Status: status, Code: code, Message: message}
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Env returns the KEY=VALUE lines that give a child process's SDK the test account's
// credentials and region. AWS_SESSION_TOKEN and AWS_PROFILE are blanked, and instance
// metadata turned off, so that the parent's environment can't override them. Each
// stand-in adds its own AWS_ENDPOINT_URL_<SERVICE> line.
func Env() []string {
	return []string{
		"AWS_REGION=" + Region,
		"AWS_ACCESS_KEY_ID=" + AccessKeyID,
		"AWS_SECRET_ACCESS_KEY=" + SecretAccessKey,
		"AWS_SESSION_TOKEN=",
		"AWS_PROFILE=",
		"AWS_EC2_METADATA_DISABLED=true",
	}
}

// NewUUID returns a random (version 4) UUID, the form of AWS's request and version IDs.
func NewUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return strings.Join([]string{h[:8], h[8:12], h[12:16], h[16:20], h[20:]}, "-")
}
