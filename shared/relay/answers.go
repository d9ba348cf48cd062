package relay

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/port-azure-relay/relay/shared/answer"

	"github.com/port-azure-relay/relay/shared/azdo"
	"github.com/port-azure-relay/relay/shared/entra"
	"github.com/port-azure-relay/relay/shared/event"
	"github.com/port-azure-relay/relay/shared/ledger"
	"github.com/port-azure-relay/relay/shared/payload"
	"github.com/port-azure-relay/relay/shared/queue"
	"github.com/port-azure-relay/relay/shared/secret"
	"github.com/port-azure-relay/relay/shared/signature"
)

// Errors of the relay's own.
var (
	ErrMethod = errors.New("method not allowed")
	ErrRoute  = errors.New("webhook not allowed")
	// ErrPipelineRoute: /pipelines/{name} names no entry of AZURE_DEVOPS_PIPELINES.
	ErrPipelineRoute = errors.New("pipeline not allowed")
	// ErrSourceNotAllowed: the HTTP caller's address is not in ALLOWED_SOURCE_IPS.
	ErrSourceNotAllowed = errors.New("source address not allowed")
)

// answers is the one place where the relay's errors become answers: the status, the
// class its metrics name (status < 500: Refused by reason; else Failed by cause;
// operators read it on the dashboard, so it stays a short fixed word, docs/operations.md),
// the sentence, and the label a Port run shows when the answer is told to it.
var answers = answer.Table{
	Rows: map[error]answer.Answer{
		ErrSourceNotAllowed:          {Status: http.StatusForbidden, Class: "source", Say: "Forbidden: the caller's address is not in the relay's allow list (ALLOWED_SOURCE_IPS)."},
		event.ErrNotJSON:             {Status: http.StatusBadRequest, Class: "event", Say: "The event is not a JSON object.", Label: "Bad event"},
		event.ErrMalformed:           {Status: http.StatusBadRequest, Class: "event", Say: "The HTTP event is malformed", Detail: true, Label: "Bad event"},
		ErrMethod:                    {Status: http.StatusMethodNotAllowed, Class: "method", Say: "Method not allowed: Port invokes webhooks with POST.", Label: "Bad request"},
		ErrRoute:                     {Status: http.StatusNotFound, Class: "route", Say: "Webhook not allowed: the path names a webhook that is not in AZURE_DEVOPS_WEBHOOKS", Detail: true, Label: "Unknown webhook"},
		ErrPipelineRoute:             {Status: http.StatusNotFound, Class: "route", Say: "Pipeline not allowed: the path names a pipeline that is not in AZURE_DEVOPS_PIPELINES", Detail: true, Label: "Unknown pipeline"},
		payload.ErrTooLarge:          {Status: http.StatusRequestEntityTooLarge, Class: "size", Say: fmt.Sprintf("The body is larger than %d bytes (1 MiB).", payload.MaxSize), Label: "Payload too large"},
		payload.ErrReservedKey:       {Status: http.StatusUnprocessableEntity, Class: "payload", Say: "Azure DevOps would accept this body and then drop the run silently", Detail: true, Label: "Payload rejected"},
		payload.ErrEmpty:             {Status: http.StatusBadRequest, Class: "payload", Say: "The body is empty: Azure DevOps needs a JSON object.", Label: "Payload rejected"},
		payload.ErrNotUTF8:           {Status: http.StatusBadRequest, Class: "payload", Say: "The body is not valid UTF-8, so Azure DevOps's signature check would fail.", Label: "Payload rejected"},
		payload.ErrTooDeep:           {Status: http.StatusBadRequest, Class: "payload", Say: fmt.Sprintf("The body nests deeper than %d levels, which Azure DevOps does not parse.", payload.MaxDepth), Label: "Payload rejected"},
		payload.ErrNotJSON:           {Status: http.StatusBadRequest, Class: "payload", Say: "The body is not valid JSON: Azure DevOps needs a JSON object", Detail: true, Label: "Payload rejected"},
		payload.ErrNotObject:         {Status: http.StatusBadRequest, Class: "payload", Say: "The body is not a JSON object: Azure DevOps runs pipelines only for an object at the root.", Label: "Payload rejected"},
		signature.ErrNoSignature:     {Status: http.StatusUnauthorized, Class: "signature", Say: "Port signature missing: send x-port-signature and x-port-timestamp."},
		signature.ErrMalformed:       {Status: http.StatusUnauthorized, Class: "signature", Say: "Port signature malformed: x-port-signature must hold v1,<base64 HMAC-SHA256> entries", Detail: true},
		signature.ErrMismatch:        {Status: http.StatusUnauthorized, Class: "signature", Say: "Port signature does not match this body and timestamp."},
		signature.ErrNoTimestamp:     {Status: http.StatusUnauthorized, Class: "signature", Say: "Port signature has no x-port-timestamp header."},
		signature.ErrBadTimestamp:    {Status: http.StatusUnauthorized, Class: "signature", Say: "x-port-timestamp must be whole seconds since the epoch."},
		signature.ErrTimestampTooOld: {Status: http.StatusUnauthorized, Class: "signature", Say: "Port signature expired", Detail: true},
		signature.ErrTimestampTooNew: {Status: http.StatusUnauthorized, Class: "signature", Say: "Port signature timestamp is in the future", Detail: true},
		signature.ErrReplayed:        {Status: http.StatusUnauthorized, Class: "replay", Say: "This signed request was already received: Port signs each invocation once, so a repeat is refused as a replay."},
		ledger.ErrInProgress:         {Status: http.StatusConflict, Class: "inprogress", Say: "This delivery is being made by another invocation right now, so nothing was sent: the Port run follows that one."},
		ErrTooOld:                    {Status: http.StatusGatewayTimeout, Class: "expired", Say: "Azure DevOps did not take this run in time, so it was not started (the delivery went to the relay's dead-letter queue): run the action again once Azure DevOps takes runs", Detail: true, Label: "Not started in time"},
		ErrNotRedriven:               {Status: http.StatusConflict, Class: "replay", Say: "This redriven delivery was not sent: its Port run has ended, and whoever ran it may have run the action again.", Label: "Not started in time"},
		queue.ErrUnavailable:         {Status: http.StatusBadGateway, Class: "queue", Say: "The relay's delivery queue (SQS) could not be written; nothing was sent.", Label: "Relay unavailable"},
		queue.ErrTooLarge:            {Status: http.StatusBadGateway, Class: "queue", Say: "The body is too large for the relay's delivery queue; nothing was sent.", Label: "Payload too large"},
		queue.ErrMalformed:           {Status: http.StatusBadGateway, Class: "queue", Say: "A message on the relay's delivery queue is not one the relay wrote; it went to the dead-letter queue unsent.", Label: "Relay error"},
		ledger.ErrGone:               {Status: http.StatusServiceUnavailable, Class: "ledger", Say: "The relay's ledger has no record of this queued delivery (it expired), so whether it was made cannot be known and nothing was sent.", Label: "Relay unavailable"},
		ledger.ErrNotThis:            {Status: http.StatusConflict, Class: "replay", Say: "The ledger holds this delivery queued for another body, so nothing was sent."},
		ledger.ErrDuplicate:          {Status: http.StatusConflict, Class: "replay", Say: "This delivery was made before, so nothing was sent."},
		ledger.ErrNotOwner:           {Status: http.StatusServiceUnavailable, Class: "ledger", Say: "The relay's ledger holds this delivery for another invocation, so nothing was sent.", Label: "Relay unavailable"},
		azdo.ErrBadPipeline:          {Status: http.StatusServiceUnavailable, Class: "internal", Say: "The pipeline's entry has no project or id: check AZURE_DEVOPS_PIPELINES; nothing was sent.", Label: "Relay misconfigured"},
		ledger.ErrUnavailable:        {Status: http.StatusServiceUnavailable, Class: "ledger", Say: "The relay's ledger (DynamoDB) could not be reached, so nothing was sent; try again.", Label: "Relay unavailable"},
		signature.ErrNoSecret:        {Status: http.StatusServiceUnavailable, Class: "secret", Say: "The relay has no signing secret.", Label: "Relay misconfigured"},
		secret.ErrNotFound:           {Status: http.StatusServiceUnavailable, Class: "secret", Say: "The relay's secret was not found in Secrets Manager: check PORT_SECRET_ID.", Label: "Relay misconfigured"},
		secret.ErrEmpty:              {Status: http.StatusServiceUnavailable, Class: "secret", Say: "The relay's secret in Secrets Manager is empty.", Label: "Relay misconfigured"},
		secret.ErrMalformed:          {Status: http.StatusServiceUnavailable, Class: "secret", Say: "The relay's secret in Secrets Manager is malformed: it must be a JSON object with a clientSecret string; its other keys, when present, must not be blank, and azureTenantId, azureClientId (and azureClientSecret) go together.", Label: "Relay misconfigured"},
		secret.ErrUnavailable:        {Status: http.StatusServiceUnavailable, Class: "secret", Say: "The relay could not read its secret from Secrets Manager; nothing was sent, try again.", Label: "Relay unavailable"},
		entra.ErrConfig:              {Status: http.StatusServiceUnavailable, Class: "secret", Say: "The Entra app in the relay's secret is not usable: azureTenantId must be a GUID or a domain and azureClientId a GUID; nothing was sent.", Label: "Relay misconfigured"},
		entra.ErrRefused:             {Status: http.StatusBadGateway, Class: "entra", Say: "Microsoft Entra ID refused the relay's app (azureTenantId, azureClientId, azureClientSecret in the secret): check the tenant, the client id and that the client secret has not expired; nothing was sent to Azure DevOps", Detail: true, Label: "Entra refused"},
		entra.ErrFederatedCredential: {Status: http.StatusBadGateway, Class: "entra", Say: "Microsoft Entra ID refused the relay's AWS identity: the app's federated credential must name exactly the issuer (the AWS account's) and the subject (the relay's role ARN), audience api://AzureADTokenExchange (docs/federation.md); nothing was sent to Azure DevOps", Detail: true, Label: "Entra refused"},
		entra.ErrFederationDisabled:  {Status: http.StatusBadGateway, Class: "federation", Say: "The AWS account has outbound identity federation turned off, so the relay has no identity token for Entra: run aws iam enable-outbound-web-identity-federation once (docs/federation.md); nothing was sent.", Label: "AWS federation off"},
		entra.ErrAWSDenied:           {Status: http.StatusBadGateway, Class: "federation", Say: "AWS denied the relay's role sts:GetWebIdentityToken: deploy with AzureFederation=true, which grants it for the audience api://AzureADTokenExchange (docs/federation.md); nothing was sent.", Label: "AWS denied"},
		entra.ErrSTSRefused:          {Status: http.StatusBadGateway, Class: "federation", Say: "AWS STS refused the relay's request for an identity token; nothing was sent", Detail: true, Label: "AWS refused"},
		entra.ErrSTSUnavailable:      {Status: http.StatusBadGateway, Class: "federation", Say: "AWS STS could not be reached for the relay's identity token; nothing was sent, try again.", Label: "AWS unavailable"},
		entra.ErrUnavailable:         {Status: http.StatusBadGateway, Class: "entra", Say: "Microsoft Entra ID could not be reached for a token; nothing was sent to Azure DevOps, try again.", Label: "Entra unavailable"},
		entra.ErrBadAnswer:           {Status: http.StatusBadGateway, Class: "entra", Say: "Microsoft Entra ID's token endpoint answered something unreadable: check AZURE_AUTHORITY_HOST; nothing was sent to Azure DevOps.", Label: "Entra unreadable"},
		azdo.ErrNoCredentials:        {Status: http.StatusServiceUnavailable, Class: "secret", Say: "The relay's secret has no credential for pipelines by id: add azurePat, or azureTenantId and azureClientId (docs/pipelines.md); nothing was sent.", Label: "Relay misconfigured"},
		azdo.ErrRunBody:              {Status: http.StatusBadRequest, Class: "payload", Say: "The run parameters in the body are not what Azure DevOps takes", Detail: true, Label: "Payload rejected"},
		azdo.ErrUnexpectedParameter:  {Status: http.StatusUnprocessableEntity, Class: "payload", Say: "Azure DevOps refused a template parameter the pipeline does not declare", Detail: true, Label: "Parameter rejected"},
		azdo.ErrCredentials:          {Status: http.StatusBadGateway, Class: "credentials", Say: "Azure DevOps refused the credentials in the relay's secret: a PAT that expired, was revoked or lacks the scope Build: Read & execute, or an Entra app that is not a user of the organization; nothing was queued.", Label: "Credentials refused"},
		azdo.ErrForbidden:            {Status: http.StatusBadGateway, Class: "credentials", Say: "Azure DevOps does not let the relay's identity queue this pipeline: grant it Queue builds on the pipeline; nothing was queued.", Label: "Not allowed"},
		azdo.ErrProjectNotFound:      {Status: http.StatusBadGateway, Class: "notfound", Say: "Azure DevOps cannot find the project of this pipeline; check AZURE_DEVOPS_PIPELINES", Detail: true, Label: "Project not found"},
		azdo.ErrPipelineNotFound:     {Status: http.StatusBadGateway, Class: "notfound", Say: "Azure DevOps cannot find this pipeline; check AZURE_DEVOPS_PIPELINES", Detail: true, Label: "Pipeline not found"},
		azdo.ErrNoRunID:              {Status: http.StatusBadGateway, Class: "server", Say: "Azure DevOps accepted the run but did not say which it started. The run may have been queued, so the relay did not retry: check the pipeline's runs before trying again.", Label: "Azure unclear"},
		azdo.ErrBadName:              {Status: http.StatusNotFound, Class: "route", Say: "The webhook name must match [-_A-Za-z0-9]+.", Label: "Unknown webhook"},
		azdo.ErrNotFound:             {Status: http.StatusBadGateway, Class: "notfound", Say: "Azure DevOps cannot find what the relay asked for; check AZURE_DEVOPS_ORG and AZURE_DEVOPS_PIPELINES; nothing was queued.", Label: "Not found"},
		azdo.ErrWebhookNotFound:      {Status: http.StatusBadGateway, Class: "notfound", Say: "Azure DevOps cannot find this webhook: check the name in the service connection, and run the pipeline once from its default branch so that Azure registers it.", Label: "Webhook not found"},
		azdo.ErrSignatureRefused:     {Status: http.StatusBadGateway, Class: "signature", Say: "Azure DevOps refused the signature, made with the secret's azureWebhookSecret (clientSecret when it has none) and with its previous version if any: the Incoming WebHook service connection must hold that value as its secret and the relay's AZURE_SIGNATURE_HEADER as its header.", Label: "Signature refused"},
		azdo.ErrThrottled:            {Status: http.StatusBadGateway, Class: "throttled", Say: "Azure DevOps is throttling requests and nothing was queued; try again later.", Label: "Throttled"},
		azdo.ErrUnavailable:          {Status: http.StatusBadGateway, Class: "unavailable", Say: "Azure DevOps is unavailable and nothing was queued; try again.", Label: "Azure unavailable"},
		azdo.ErrTLS:                  {Status: http.StatusBadGateway, Class: "tls", Say: "Azure DevOps's TLS certificate is not trusted: check AZURE_DEVOPS_URL.", Label: "Azure unreachable"},
		azdo.ErrServerError:          {Status: http.StatusBadGateway, Class: "server", Say: "Azure DevOps failed with a server error. The run may have been queued, so the relay did not retry: check the pipeline's runs and Azure DevOps's status before trying again", Detail: true, Label: "Azure failed"},
		azdo.ErrRefused:              {Status: http.StatusBadGateway, Class: "refused", Say: "Azure DevOps refused the request, so nothing was queued: check AZURE_DEVOPS_ORG and the target (the webhook's name, or the pipeline's entry in AZURE_DEVOPS_PIPELINES and the run parameters the body gives)", Detail: true, Label: "Azure refused"},
		azdo.ErrNoAnswer:             {Status: http.StatusGatewayTimeout, Class: "timeout", Say: "Azure DevOps did not answer in time. The run may have been queued, so the relay did not retry: check the pipeline's runs before trying again.", Label: "Timed out"},
		azdo.ErrNoTime:               {Status: http.StatusGatewayTimeout, Class: "timeout", Say: "The relay ran out of time before its request reached Azure DevOps; nothing was sent, try again.", Label: "Timed out"},
		azdo.ErrConnection:           {Status: http.StatusBadGateway, Class: "connection", Say: "The connection to Azure DevOps broke after the request was sent. The run may have been queued, so the relay did not retry: check the pipeline's runs before trying again.", Label: "Azure unreachable"},
	},
	Otherwise: answer.Answer{Status: http.StatusInternalServerError, Class: "internal", Say: "The relay failed unexpectedly; nothing was sent.", Label: "Relay error"},
}

// classify returns the answer to err and the sentence for the caller.
func classify(err error) (answer.Answer, string) {
	a, say, _ := answers.For(err)
	return a, say
}

// answerKey names the answer to err, for the ledger to keep with a refusal.
func answerKey(err error) string {
	_, _, sentinel := answers.For(err)
	return answer.Key(sentinel)
}
