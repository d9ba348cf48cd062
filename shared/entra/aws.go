package entra

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/aws-sdk-go-v2/service/sts/types"
	"github.com/aws/smithy-go"
)

const (
	// TokenExchangeAudience is the audience Entra expects of a federated identity credential's token.
	TokenExchangeAudience = "api://AzureADTokenExchange"
	// signingAlgorithm is how STS signs the token: RS256 is what every OIDC verifier supports.
	signingAlgorithm = "RS256"
	// AssertionDurationSeconds is how long the AWS token lives. It only has to reach Entra, so it is short; the
	// template caps sts:DurationSeconds at it, so that a leaked token is worth little.
	AssertionDurationSeconds = 300
	// AssertionMargin is how long before its Expiration a token stops being presented, at most: Entra must still find
	// it valid on arrival.
	AssertionMargin = time.Minute
)

// STSClient is the part of the STS client that AWSAssertion uses, with the SDK's exact signature: *sts.Client satisfies
// it, and tests fake it with a function.
type STSClient interface {
	GetWebIdentityToken(ctx context.Context, params *sts.GetWebIdentityTokenInput, optFns ...func(*sts.Options)) (*sts.GetWebIdentityTokenOutput, error)
}

var _ STSClient = (*sts.Client)(nil)

// AWSAssertion is the AssertionSource of a function that signs in to Entra with its IAM role instead of a secret
// (AWS "outbound identity federation"): STS GetWebIdentityToken issues a JWT whose subject is the role's ARN, for
// the audience api://AzureADTokenExchange. The token is kept until AssertionMargin before it expires; as Client asks
// for one only when its own Entra token runs out, a container makes one STS call and one Entra call an hour.
// It is safe for concurrent use; the zero value needs STS set.
type AWSAssertion struct {
	STS STSClient
	Now func() time.Time // nil means time.Now

	once  sync.Once
	lock  chan struct{} // held while reading or fetching the token; a channel so that waiters can give up on ctx
	token string
	until time.Time
}

// Assertion returns the role's web identity token for Entra. Its errors wrap ErrFederationDisabled, ErrAWSDenied,
// ErrSTSRefused or ErrSTSUnavailable.
func (a *AWSAssertion) Assertion(ctx context.Context) (string, error) {
	a.once.Do(func() { a.lock = make(chan struct{}, 1) })
	select {
	case a.lock <- struct{}{}:
	case <-ctx.Done():
		return "", fmt.Errorf("sts: GetWebIdentityToken: %w: %w", ErrSTSUnavailable, ctx.Err())
	}
	defer func() { <-a.lock }()

	now := a.now()
	if a.token != "" && now.Before(a.until) {
		return a.token, nil
	}
	a.token = ""
	out, err := a.STS.GetWebIdentityToken(ctx, &sts.GetWebIdentityTokenInput{
		Audience:         []string{TokenExchangeAudience},
		SigningAlgorithm: aws.String(signingAlgorithm),
		DurationSeconds:  aws.Int32(AssertionDurationSeconds),
	})
	if err != nil {
		return "", fmt.Errorf("sts: GetWebIdentityToken: %w", stsError(ctx, err))
	}
	tok := aws.ToString(out.WebIdentityToken)
	if tok == "" {
		return "", fmt.Errorf("sts: GetWebIdentityToken: %w: an answer without a token", ErrSTSUnavailable)
	}
	expires := now.Add(AssertionDurationSeconds * time.Second)
	if out.Expiration != nil {
		expires = *out.Expiration
	}
	life := expires.Sub(now)
	a.token, a.until = tok, expires.Add(-min(AssertionMargin, life/2))
	return tok, nil
}

// stsError classifies an STS failure by the SDK's typed error or the API error code; the message, which holds ARNs
// and policy text, is left out.
func stsError(ctx context.Context, err error) error {
	var disabled *types.OutboundWebIdentityFederationDisabledException
	var apiErr smithy.APIError
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("%w: %w", ErrSTSUnavailable, ctx.Err())
	case errors.As(err, &disabled):
		return fmt.Errorf("%w: %s", ErrFederationDisabled, disabled.ErrorCode())
	case !errors.As(err, &apiErr):
		return fmt.Errorf("%w: request failed", ErrSTSUnavailable) // transport, or retries used up on one
	}
	code := apiErr.ErrorCode()
	if !awsCode(code) {
		code = "unrecognized"
	}
	switch {
	case code == "AccessDenied" || code == "AccessDeniedException":
		return fmt.Errorf("%w: %s", ErrAWSDenied, code)
	case code == "Throttling" || code == "ThrottlingException" || code == "RequestLimitExceeded" ||
		apiErr.ErrorFault() == smithy.FaultServer || code == "InternalFailure" || code == "ServiceUnavailable":
		return fmt.Errorf("%w: %s", ErrSTSUnavailable, code)
	default:
		return fmt.Errorf("%w: %s", ErrSTSRefused, code)
	}
}

// awsCode accepts an AWS error code: a word of letters, digits and dots (ValidationError, InvalidAction).
func awsCode(s string) bool {
	if len(s) == 0 || len(s) > 100 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.') {
			return false
		}
	}
	return true
}

func (a *AWSAssertion) now() time.Time {
	if a.Now == nil {
		return time.Now()
	}
	return a.Now()
}
