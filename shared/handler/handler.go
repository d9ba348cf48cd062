// Package handler adapts the functions' cores to aws-lambda-go: the raw event in,
// an API Gateway response, a JSON result or a function error out. It is the only
// package that imports aws-lambda-go, and it holds the functions' common main.
package handler

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/port-azure-relay/relay/shared/event"
)

// Core is what a function does with one raw event; *relay.Relay and
// *receiver.Receiver are cores.
type Core interface {
	Handle(ctx context.Context, requestID string, raw []byte) event.Response
}

// Failure is the function error of an AWS-event invocation that failed, so that
// Lambda retries it and its failure destination keeps the event. Lambda reports
// it with errorType "Failure" and the sentence as errorMessage.
type Failure struct {
	Status  int    `json:"status"`
	Message string `json:"message"`
}

func (f *Failure) Error() string { return f.Message }

// Func answers one raw event: an API Gateway response, a JSON result or a *Failure.
type Func func(ctx context.Context, raw json.RawMessage) (any, error)

// Invoke makes Func an aws-lambda-go Handler, so that the event reaches the core as
// the bytes that came, whatever they are. Given a plain function, aws-lambda-go
// would decode the event itself and answer an event that is not JSON with its own
// SyntaxError, without the core's answer or log line.
func (f Func) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	out, err := f(ctx, payload)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // as aws-lambda-go encodes results
	if err := enc.Encode(out); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// Invoke returns the function aws-lambda-go calls for each event.
func Invoke(core Core) Func {
	return func(ctx context.Context, raw json.RawMessage) (any, error) {
		var requestID string
		if lc, ok := lambdacontext.FromContext(ctx); ok {
			requestID = lc.AwsRequestID
		}
		resp := core.Handle(ctx, requestID, raw)
		switch {
		case resp.HTTP && resp.Kind == event.REST:
			// A REST API (payload 1.0) refuses a response with keys it does not
			// know, such as the 2.0 shape's "cookies", with a 502 to the caller.
			return events.APIGatewayProxyResponse{
				StatusCode: resp.Status,
				Headers:    map[string]string{"Content-Type": "application/json"},
				Body:       string(resp.Body),
			}, nil
		case resp.HTTP:
			// HTTP APIs (2.0) and Function URLs take the 2.0 shape.
			return events.APIGatewayV2HTTPResponse{
				StatusCode: resp.Status,
				Headers:    map[string]string{"Content-Type": "application/json"},
				Body:       string(resp.Body),
			}, nil
		case resp.Status >= 300 && !resp.MayHaveQueued:
			return nil, &Failure{Status: resp.Status, Message: resp.Error}
		default:
			return json.RawMessage(resp.Body), nil
		}
	}
}

// Logger returns the JSON-lines logger both functions use: Lambda's JSON log format
// reads "level" for filtering, and "time" and "msg" as they are.
func Logger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, nil))
}

// Build makes a function's core from its configuration, the logger and the AWS
// configuration (loaded once, for the SDK clients it needs); it returns an error that
// names a missing or invalid variable.
type Build func(log *slog.Logger, aws aws.Config) (Core, error)

// LambdaConfig is the AWS configuration of a function: Lambda hands it everything in
// the environment (region, the role's credentials, and locally AWS_ENDPOINT_URL_<SERVICE>),
// so the SDK's shared-config, SSO and instance-metadata providers, a megabyte of the
// binary, are not linked.
func LambdaConfig() (aws.Config, error) {
	env, err := awsconfig.NewEnvConfig()
	if err != nil {
		return aws.Config{}, err
	}
	if env.Credentials.AccessKeyID == "" || env.Credentials.SecretAccessKey == "" {
		return aws.Config{}, errors.New("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are required (Lambda sets them from the function's role)")
	}
	cfg := aws.Config{
		Region:        env.Region,
		Credentials:   aws.NewCredentialsCache(credentials.StaticCredentialsProvider{Value: env.Credentials}),
		ConfigSources: []any{env},
	}
	if env.BaseEndpoint != "" {
		cfg.BaseEndpoint = &env.BaseEndpoint
	}
	return cfg, nil
}

// Run is a function's main: it builds the core once per container and serves it.
// A configuration error stops the function at start-up with one log line.
func Run(build Build) {
	log := Logger(os.Stdout)
	aws, err := LambdaConfig()
	if err == nil && aws.Region == "" {
		// Lambda always sets it; a local run may not, and Secrets Manager needs it.
		err = errors.New("AWS_REGION is required")
	}
	if err != nil {
		log.Error("invalid AWS configuration", "error", err.Error())
		os.Exit(1)
	}
	core, err := build(log, aws)
	if err != nil {
		log.Error("invalid configuration", "error", err.Error())
		os.Exit(1)
	}
	// With SIGTERM handled, an invocation in progress finishes before the shutdown.
	lambda.StartWithOptions(Invoke(core),
		lambda.WithEnableSIGTERM(func() { log.Info("SIGTERM: finishing the invocation in progress, then stopping") }))
}
