// Package smtest stands in for AWS Secrets Manager, for tests, demos and benchmarks: a local
// endpoint that the real SDK client reaches through AWS_ENDPOINT_URL_SECRETS_MANAGER.
//
// It enforces what the relay depends on: requests signed with Signature Version 4 for the
// test account (awstest), the AWS JSON 1.1 protocol and its error shapes (the SDK's typed
// errors), GetSecretValue by name, full ARN or partial ARN, by VersionId and VersionStage, and
// the version stages PutSecretValue moves (AWSCURRENT becomes AWSPREVIOUS), each version with
// its CreatedDate. Faults (throttling, internal errors, access denied, a dropped connection, a
// slow answer) are injected on demand. Other operations are refused as unknown.
package smtest

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/port-azure-relay/relay/shared/awstest"
)

const (
	service     = "secretsmanager"
	jsonType    = "application/x-amz-json-1.1"
	arnPrefix   = "arn:aws:secretsmanager:" + awstest.Region + ":" + awstest.AccountID + ":secret:"
	maxBodySize = 1 << 20
)

// A Fault is a failure the server injects, set with SetFault (awstest.Fault: Times limits it).
type Fault = awstest.Fault

// The faults the server can inject.
var (
	// None answers normally.
	None = awstest.None
	// Down closes every connection without answering, like an unreachable endpoint.
	Down = awstest.Down
	// Throttle answers 400 ThrottlingException, which the SDK retries with backoff.
	Throttle = Fault{Kind: "throttle"}
	// InternalError answers 500 InternalServiceError, which the SDK retries.
	InternalError = Fault{Kind: "internal"}
	// AccessDenied answers 400 AccessDeniedException, as AWS does when IAM lacks secretsmanager:GetSecretValue.
	AccessDenied = Fault{Kind: "denied"}
)

// Slow delays each answer by d, or until the client gives up.
func Slow(d time.Duration) Fault { return awstest.Slow(d) }

// Server is a Secrets Manager endpoint that answers GetSecretValue. It is safe for concurrent use.
type Server struct {
	// URL is the endpoint's base URL, http://127.0.0.1:port, for BaseEndpoint or AWS_ENDPOINT_URL_SECRETS_MANAGER.
	URL string
	// Now dates the versions Put stores (their CreatedDate), for tests whose clock is not the
	// wall clock; nil: time.Now. Signatures are always checked against the wall clock, as AWS does.
	Now func() time.Time

	srv    *httptest.Server
	done   chan struct{} // closed by Close, so slow answers don't hold it up
	calls  atomic.Int64
	faults awstest.Faults

	mu         sync.Mutex
	secrets    map[string]*secret // by name
	stageCalls map[string]int     // GetSecretValue calls by the stage asked for
}

type secret struct {
	arn, name string
	versions  []version // oldest first
}

// version is one value of a secret with its staging labels, as PutSecretValue keeps them.
type version struct {
	id, value string
	stages    []string
	created   time.Time
}

// Version stages that Put moves, as Secrets Manager does.
const (
	StageCurrent  = "AWSCURRENT"
	StagePrevious = "AWSPREVIOUS"
)

// New starts a server on 127.0.0.1 with a random port. Close it when done.
func New() *Server {
	s := newServer()
	s.srv.Start()
	s.URL = s.srv.URL
	return s
}

// NewTLS is New over HTTPS, as AWS serves it, with config's certificate (httptest's
// own when config has none): the client pays for a TLS handshake, as against AWS.
func NewTLS(config *tls.Config) *Server {
	s := newServer()
	s.srv.TLS = config
	s.srv.StartTLS()
	s.URL = s.srv.URL
	return s
}

func newServer() *Server {
	s := &Server{done: make(chan struct{}), secrets: make(map[string]*secret), stageCalls: make(map[string]int)}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	return s
}

// Close stops the server and waits for answers in progress.
func (s *Server) Close() {
	close(s.done)
	s.srv.Close()
}

// Env returns the KEY=VALUE lines that point the real SDK in a child process at this server,
// with the test account's credentials (awstest.Env).
func (s *Server) Env() []string {
	return append(awstest.Env(), "AWS_ENDPOINT_URL_SECRETS_MANAGER="+s.URL)
}

// Put creates the secret or stores a new value, as CreateSecret and PutSecretValue do,
// and returns its ARN. The new version becomes AWSCURRENT, the version that was current
// becomes AWSPREVIOUS, and the one before loses its label (it stays readable by
// VersionId). As in AWS, the ARN ends in a random suffix and stays the same across versions.
func (s *Server) Put(name, secretString string) (arn string) {
	if name == "" {
		panic("smtest: Put with an empty secret name")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, ok := s.secrets[name]
	if !ok {
		sec = &secret{name: name, arn: arnPrefix + name + "-" + rand.Text()[:6]}
		s.secrets[name] = sec
	}
	for i := range sec.versions {
		v := &sec.versions[i]
		v.stages = slices.DeleteFunc(v.stages, func(st string) bool { return st == StagePrevious })
		if i := slices.Index(v.stages, StageCurrent); i >= 0 {
			v.stages[i] = StagePrevious
		}
	}
	created := time.Now()
	if s.Now != nil {
		created = s.Now()
	}
	sec.versions = append(sec.versions, version{id: awstest.NewUUID(), value: secretString, stages: []string{StageCurrent}, created: created})
	return sec.arn
}

// Delete removes the secret at once, like DeleteSecret with ForceDeleteWithoutRecovery.
func (s *Server) Delete(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.secrets, name)
}

// Calls counts the GetSecretValue requests that passed authentication, faulted or not.
func (s *Server) Calls() int { return int(s.calls.Load()) }

// StageCalls counts the GetSecretValue requests that asked for a version stage
// ("" for those that asked for none, which read AWSCURRENT), faulted or not.
func (s *Server) StageCalls(stage string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stageCalls[stage]
}

// SetFault makes the server fail from now on as f says; SetFault(None) heals it.
func (s *Server) SetFault(f Fault) { s.faults.Set(f) }

// lookup finds a secret by name, full ARN, or ARN without the random suffix, as AWS
// does. It is called with s.mu held.
func (s *Server) lookup(id string) (*secret, bool) {
	if sec, ok := s.secrets[id]; ok {
		return sec, true
	}
	for _, sec := range s.secrets {
		if id == sec.arn || id == arnPrefix+sec.name {
			return sec, true
		}
	}
	return nil, false
}

var (
	errNotFound      = awstest.NewError(http.StatusBadRequest, "ResourceNotFoundException", "Secrets Manager can't find the specified secret.")
	errThrottled     = awstest.NewError(http.StatusBadRequest, "ThrottlingException", "Rate exceeded")
	errInternal      = awstest.NewError(http.StatusInternalServerError, "InternalServiceError", "An error occurred on the server side.")
	errAccessDenied  = awstest.NewError(http.StatusBadRequest, "AccessDeniedException", "User: arn:aws:sts::123456789012:assumed-role/smtest is not authorized to perform: secretsmanager:GetSecretValue because no identity-based policy allows the secretsmanager:GetSecretValue action")
	errBadBody       = awstest.NewError(http.StatusBadRequest, "SerializationException", "Malformed request body: expected a JSON object.")
	errNoSecretID    = awstest.NewError(http.StatusBadRequest, "ValidationException", "1 validation error detected: Value null at 'secretId' failed to satisfy constraint: Member must not be null")
	errTooLarge      = awstest.NewError(http.StatusRequestEntityTooLarge, "SerializationException", "Request body too large.")
	errUnknownTarget = awstest.NewError(http.StatusBadRequest, "UnknownOperationException", "")
)

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	fault := s.faults.Take("")
	if fault.Kind == "down" {
		if !awstest.Drop(w) {
			writeError(w, errInternal)
		}
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodySize))
	if err != nil {
		writeError(w, errTooLarge)
		return
	}
	if e := awstest.Verify(r, body, service, time.Now()); e != nil {
		writeError(w, e)
		return
	}
	// AWS JSON 1.1: POST with the operation in X-Amz-Target and a JSON body; anything else (CBOR, REST) is unknown.
	if r.Method != http.MethodPost || r.Header.Get("X-Amz-Target") != "secretsmanager.GetSecretValue" ||
		r.Header.Get("Content-Type") != jsonType {
		writeError(w, errUnknownTarget)
		return
	}
	s.calls.Add(1)
	var in getSecretValueInput
	_ = json.Unmarshal(body, &in)
	s.mu.Lock()
	s.stageCalls[in.VersionStage]++
	s.mu.Unlock()
	if e := s.inject(r.Context(), fault); e != nil {
		writeError(w, e)
		return
	}
	out, e := s.getSecretValue(body)
	if e != nil {
		writeError(w, e)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// inject waits or fails as the fault says; a nil result means answer normally.
func (s *Server) inject(ctx context.Context, f Fault) *awstest.Error {
	f.Wait(ctx, s.done)
	switch f.Kind {
	case "throttle":
		return errThrottled
	case "internal":
		return errInternal
	case "denied":
		return errAccessDenied
	}
	return nil
}

type getSecretValueInput struct {
	SecretID     string `json:"SecretId"`
	VersionID    string `json:"VersionId"`
	VersionStage string `json:"VersionStage"`
}

type getSecretValueOutput struct {
	ARN           string
	CreatedDate   json.Number // epoch seconds, as AWS JSON 1.1 sends timestamps
	Name          string
	SecretString  string
	VersionID     string `json:"VersionId"`
	VersionStages []string
}

func (s *Server) getSecretValue(body []byte) (*getSecretValueOutput, *awstest.Error) {
	var in getSecretValueInput
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, errBadBody
	}
	if in.SecretID == "" {
		return nil, errNoSecretID
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, ok := s.lookup(in.SecretID)
	if !ok {
		return nil, errNotFound
	}
	// As in AWS: VersionId and VersionStage, when both given, must name the same
	// version; neither means AWSCURRENT.
	stage := in.VersionStage
	if stage == "" && in.VersionID == "" {
		stage = StageCurrent
	}
	var v *version
	for i := range sec.versions {
		if c := &sec.versions[i]; (in.VersionID == "" || c.id == in.VersionID) && (stage == "" || slices.Contains(c.stages, stage)) {
			v = c
		}
	}
	switch {
	case v != nil:
	case in.VersionID != "" && stage != "" && slices.ContainsFunc(sec.versions, func(c version) bool { return c.id == in.VersionID }):
		return nil, awstest.NewError(http.StatusBadRequest, "InvalidRequestException",
			"You provided a VersionStage that is not associated to the provided VersionId.")
	case in.VersionID != "":
		return nil, awstest.NewError(http.StatusBadRequest, "ResourceNotFoundException",
			"Secrets Manager can't find the specified secret value for VersionId: "+in.VersionID)
	default:
		return nil, awstest.NewError(http.StatusBadRequest, "ResourceNotFoundException",
			"Secrets Manager can't find the specified secret value for staging label: "+stage)
	}
	return &getSecretValueOutput{
		ARN:           sec.arn,
		CreatedDate:   json.Number(strconv.FormatFloat(float64(v.created.UnixMilli())/1000, 'f', 3, 64)),
		Name:          sec.name,
		SecretString:  v.value,
		VersionID:     v.id,
		VersionStages: slices.Clone(v.stages),
	}, nil
}

func writeError(w http.ResponseWriter, e *awstest.Error) {
	writeJSON(w, e.Status, struct {
		Type    string `json:"__type"`
		Message string `json:"message,omitempty"`
	}{e.Code, e.Message})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"__type":"InternalServiceError"}`)
	}
	w.Header().Set("Content-Type", jsonType)
	w.Header().Set("X-Amzn-Requestid", awstest.NewUUID())
	w.WriteHeader(status)
	w.Write(b)
}
