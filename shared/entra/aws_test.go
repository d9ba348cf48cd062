package entra_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/aws-sdk-go-v2/service/sts/types"
	"github.com/aws/smithy-go"

	"github.com/port-azure-relay/relay/shared/entra"
)

// stsFunc fakes the STS client with a function, as the SDK's unit-testing guide does.
type stsFunc func(ctx context.Context, in *sts.GetWebIdentityTokenInput, optFns ...func(*sts.Options)) (*sts.GetWebIdentityTokenOutput, error)

func (f stsFunc) GetWebIdentityToken(ctx context.Context, in *sts.GetWebIdentityTokenInput, optFns ...func(*sts.Options)) (*sts.GetWebIdentityTokenOutput, error) {
	return f(ctx, in, optFns...)
}

// The request is the one the template's policy allows: Entra's audience, RS256, the short duration.
func TestAWSAssertionAsksForWhatThePolicyAllowsAndKeepsIt(t *testing.T) {
	clk := newClock()
	var calls atomic.Int64
	fake := stsFunc(func(_ context.Context, in *sts.GetWebIdentityTokenInput, _ ...func(*sts.Options)) (*sts.GetWebIdentityTokenOutput, error) {
		n := calls.Add(1)
		if len(in.Audience) != 1 || in.Audience[0] != "api://AzureADTokenExchange" || aws.ToString(in.SigningAlgorithm) != "RS256" ||
			aws.ToInt32(in.DurationSeconds) != 300 || in.Tags != nil {
			t.Errorf("GetWebIdentityToken(%+v), want Audience [api://AzureADTokenExchange], RS256, 300 s, no tags", in)
		}
		exp := clk.Now().Add(300 * time.Second)
		return &sts.GetWebIdentityTokenOutput{WebIdentityToken: aws.String("jwt-" + string(rune('0'+n))), Expiration: &exp}, nil
	})
	a := &entra.AWSAssertion{STS: fake, Now: clk.Now}
	first, err := a.Assertion(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	clk.Add(300*time.Second - entra.AssertionMargin - time.Second)
	if again, _ := a.Assertion(t.Context()); again != first || calls.Load() != 1 {
		t.Fatalf("Assertion() within its life = %q after %d calls, want %q from memory", again, calls.Load(), first)
	}
	clk.Add(time.Second)
	if next, _ := a.Assertion(t.Context()); next == first || calls.Load() != 2 {
		t.Fatalf("Assertion() at the margin = %q after %d calls, want a new token", next, calls.Load())
	}
}

func TestAWSAssertionClassifiesSTSErrorsWithoutTheirMessages(t *testing.T) {
	const leak = "User: arn:aws:sts::123456789012:assumed-role/relay/x is not authorized"
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		err  error
		want error
		code string
	}{
		{name: "federation off", err: &types.OutboundWebIdentityFederationDisabledException{Message: aws.String(leak)},
			want: entra.ErrFederationDisabled, code: "OutboundWebIdentityFederationDisabledException"},
		{name: "AccessDenied", err: &smithy.GenericAPIError{Code: "AccessDenied", Message: leak}, want: entra.ErrAWSDenied, code: "AccessDenied"},
		{name: "a validation error", err: &smithy.GenericAPIError{Code: "ValidationError", Message: leak}, want: entra.ErrSTSRefused, code: "ValidationError"},
		{name: "an expired session token", err: &smithy.GenericAPIError{Code: "ExpiredToken", Message: leak}, want: entra.ErrSTSRefused, code: "ExpiredToken"},
		{name: "throttling", err: &smithy.GenericAPIError{Code: "Throttling", Message: leak}, want: entra.ErrSTSUnavailable, code: "Throttling"},
		{name: "a server fault", err: &smithy.GenericAPIError{Code: "Whatever", Message: leak, Fault: smithy.FaultServer}, want: entra.ErrSTSUnavailable, code: "Whatever"},
		{name: "a code that is not a word", err: &smithy.GenericAPIError{Code: "<html>" + leak, Message: leak}, want: entra.ErrSTSRefused, code: "unrecognized"},
		{name: "a transport error", err: &net.OpError{Op: "dial", Err: errors.New(leak)}, want: entra.ErrSTSUnavailable, code: "request failed"},
		{name: "the caller's context", ctx: canceled, err: context.Canceled, want: entra.ErrSTSUnavailable, code: "context canceled"},
		{name: "an answer without a token", want: entra.ErrSTSUnavailable, code: "without a token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := stsFunc(func(context.Context, *sts.GetWebIdentityTokenInput, ...func(*sts.Options)) (*sts.GetWebIdentityTokenOutput, error) {
				if tt.err != nil {
					return nil, tt.err
				}
				return &sts.GetWebIdentityTokenOutput{}, nil
			})
			ctx := tt.ctx
			if ctx == nil {
				ctx = t.Context()
			}
			_, err := (&entra.AWSAssertion{STS: fake}).Assertion(ctx)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.code) {
				t.Fatalf("Assertion() = %v, want %v with %q", err, tt.want, tt.code)
			}
			if strings.Contains(err.Error(), "not authorized") || strings.Contains(err.Error(), "arn:aws") {
				t.Errorf("error %q shows STS's message", err)
			}
		})
	}
}

func TestAWSAssertionGivesUpWaitingOnItsContext(t *testing.T) {
	release := make(chan struct{})
	fake := stsFunc(func(context.Context, *sts.GetWebIdentityTokenInput, ...func(*sts.Options)) (*sts.GetWebIdentityTokenOutput, error) {
		<-release
		return &sts.GetWebIdentityTokenOutput{WebIdentityToken: aws.String("jwt")}, nil
	})
	a := &entra.AWSAssertion{STS: fake}
	started := make(chan struct{})
	go func() { close(started); a.Assertion(context.Background()) }()
	<-started
	time.Sleep(20 * time.Millisecond) // the first caller holds the lock
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, err := a.Assertion(ctx); !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, entra.ErrSTSUnavailable) {
		t.Errorf("a waiting Assertion() = %v, want its deadline", err)
	}
	close(release)
}
