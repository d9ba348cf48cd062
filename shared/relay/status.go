package relay

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/port-azure-relay/relay/shared/azdo"
	"github.com/port-azure-relay/relay/shared/entra"
	"github.com/port-azure-relay/relay/shared/event"
	"github.com/port-azure-relay/relay/shared/ledger"
	"github.com/port-azure-relay/relay/shared/payload"
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

// rule maps an error to what the caller is told. say is the user's sentence; with
// detail, the error's own text (which never holds input or upstream text) follows it.
// label is the short status label a failed Port run shows. class names the
// reason (status < 500: Refused) or the cause (Failed) in the metrics; operators
// read it on the dashboard, so it stays a short fixed word (docs/operations.md).
type rule struct {
	err    error
	status int
	label  string
	say    string
	detail bool
	class  string
}

// rules is the one place where errors become statuses. The first match wins.
var rules = []rule{
	{ErrSourceNotAllowed, 403, "", "Forbidden: the caller's address is not in the relay's allow list (ALLOWED_SOURCE_IPS).", false, "source"},
	{event.ErrNotJSON, 400, "Bad event", "The event is not a JSON object.", false, "event"},
	{event.ErrMalformed, 400, "Bad event", "The HTTP event is malformed", true, "event"},
	{ErrMethod, 405, "Bad request", "Method not allowed: Port invokes webhooks with POST.", false, "method"},
	{ErrRoute, 404, "Unknown webhook", "Webhook not allowed: the path names a webhook that is not in AZURE_DEVOPS_WEBHOOKS", true, "route"},
	{ErrPipelineRoute, 404, "Unknown pipeline", "Pipeline not allowed: the path names a pipeline that is not in AZURE_DEVOPS_PIPELINES", true, "route"},
	{payload.ErrTooLarge, 413, "Payload too large", fmt.Sprintf("The body is larger than %d bytes (1 MiB).", payload.MaxSize), false, "size"},
	{payload.ErrReservedKey, 422, "Payload rejected", "Azure DevOps would accept this body and then drop the run silently", true, "payload"},
	{payload.ErrEmpty, 400, "Payload rejected", "The body is empty: Azure DevOps needs a JSON object.", false, "payload"},
	{payload.ErrNotUTF8, 400, "Payload rejected", "The body is not valid UTF-8, so Azure DevOps's signature check would fail.", false, "payload"},
	{payload.ErrTooDeep, 400, "Payload rejected", fmt.Sprintf("The body nests deeper than %d levels, which Azure DevOps does not parse.", payload.MaxDepth), false, "payload"},
	{payload.ErrNotJSON, 400, "Payload rejected", "The body is not valid JSON: Azure DevOps needs a JSON object", true, "payload"},
	{payload.ErrNotObject, 400, "Payload rejected", "The body is not a JSON object: Azure DevOps runs pipelines only for an object at the root.", false, "payload"},
	{signature.ErrNoSignature, 401, "", "Port signature missing: send x-port-signature and x-port-timestamp.", false, "signature"},
	{signature.ErrMalformed, 401, "", "Port signature malformed: x-port-signature must hold v1,<base64 HMAC-SHA256> entries", true, "signature"},
	{signature.ErrMismatch, 401, "", "Port signature does not match this body and timestamp.", false, "signature"},
	{signature.ErrNoTimestamp, 401, "", "Port signature has no x-port-timestamp header.", false, "signature"},
	{signature.ErrBadTimestamp, 401, "", "x-port-timestamp must be whole seconds since the epoch.", false, "signature"},
	{signature.ErrTimestampTooOld, 401, "", "Port signature expired", true, "signature"},
	{signature.ErrTimestampTooNew, 401, "", "Port signature timestamp is in the future", true, "signature"},
	{signature.ErrReplayed, 401, "", "This signed request was already received: Port signs each invocation once, so a repeat is refused as a replay.", false, "replay"},
	{ledger.ErrInProgress, 409, "", "This delivery is being made by another invocation right now, so nothing was sent: the Port run follows that one.", false, "inprogress"},
	{ledger.ErrUnavailable, 503, "Relay unavailable", "The relay's ledger (DynamoDB) could not be reached, so nothing was sent; try again.", false, "ledger"},
	{signature.ErrNoSecret, 503, "Relay misconfigured", "The relay has no signing secret.", false, "secret"},
	{secret.ErrNotFound, 503, "Relay misconfigured", "The relay's secret was not found in Secrets Manager: check PORT_SECRET_ID.", false, "secret"},
	{secret.ErrEmpty, 503, "Relay misconfigured", "The relay's secret in Secrets Manager is empty.", false, "secret"},
	{secret.ErrMalformed, 503, "Relay misconfigured", "The relay's secret in Secrets Manager is malformed: it must be a JSON object with a clientSecret string; its other keys, when present, must not be blank, and azureTenantId, azureClientId (and azureClientSecret) go together.", false, "secret"},
	{secret.ErrUnavailable, 503, "Relay unavailable", "The relay could not read its secret from Secrets Manager; nothing was sent, try again.", false, "secret"},
	// Pipelines by id: the Entra side first (its errors come wrapped in azdo's), then Azure's Runs API.
	{entra.ErrConfig, 503, "Relay misconfigured", "The Entra app in the relay's secret is not usable: azureTenantId must be a GUID or a domain and azureClientId a GUID; nothing was sent.", false, "secret"},
	{entra.ErrRefused, 502, "Entra refused", "Microsoft Entra ID refused the relay's app (azureTenantId, azureClientId, azureClientSecret in the secret): check the tenant, the client id and that the client secret has not expired; nothing was sent to Azure DevOps", true, "entra"},
	{entra.ErrFederatedCredential, 502, "Entra refused", "Microsoft Entra ID refused the relay's AWS identity: the app's federated credential must name exactly the issuer (the AWS account's) and the subject (the relay's role ARN), audience api://AzureADTokenExchange (docs/federation.md); nothing was sent to Azure DevOps", true, "entra"},
	{entra.ErrFederationDisabled, 502, "AWS federation off", "The AWS account has outbound identity federation turned off, so the relay has no identity token for Entra: run aws iam enable-outbound-web-identity-federation once (docs/federation.md); nothing was sent.", false, "federation"},
	{entra.ErrAWSDenied, 502, "AWS denied", "AWS denied the relay's role sts:GetWebIdentityToken: deploy with AzureFederation=true, which grants it for the audience api://AzureADTokenExchange (docs/federation.md); nothing was sent.", false, "federation"},
	{entra.ErrSTSRefused, 502, "AWS refused", "AWS STS refused the relay's request for an identity token; nothing was sent", true, "federation"},
	{entra.ErrSTSUnavailable, 502, "AWS unavailable", "AWS STS could not be reached for the relay's identity token; nothing was sent, try again.", false, "federation"},
	{entra.ErrUnavailable, 502, "Entra unavailable", "Microsoft Entra ID could not be reached for a token; nothing was sent to Azure DevOps, try again.", false, "entra"},
	{entra.ErrBadAnswer, 502, "Entra unreadable", "Microsoft Entra ID's token endpoint answered something unreadable: check AZURE_AUTHORITY_HOST; nothing was sent to Azure DevOps.", false, "entra"},
	{azdo.ErrNoCredentials, 503, "Relay misconfigured", "The relay's secret has no credential for pipelines by id: add azurePat, or azureTenantId and azureClientId (docs/pipelines.md); nothing was sent.", false, "secret"},
	{azdo.ErrRunBody, 400, "Payload rejected", "The run parameters in the body are not what Azure DevOps takes", true, "payload"},
	{azdo.ErrUnexpectedParameter, 422, "Parameter rejected", "Azure DevOps refused a template parameter the pipeline does not declare", true, "payload"},
	{azdo.ErrCredentials, 502, "Credentials refused", "Azure DevOps refused the credentials in the relay's secret: a PAT that expired, was revoked or lacks the scope Build: Read & execute, or an Entra app that is not a user of the organization; nothing was queued.", false, "credentials"},
	{azdo.ErrForbidden, 502, "Not allowed", "Azure DevOps does not let the relay's identity queue this pipeline: grant it Queue builds on the pipeline; nothing was queued.", false, "credentials"},
	{azdo.ErrProjectNotFound, 502, "Project not found", "Azure DevOps cannot find the project of this pipeline; check AZURE_DEVOPS_PIPELINES", true, "notfound"},
	{azdo.ErrPipelineNotFound, 502, "Pipeline not found", "Azure DevOps cannot find this pipeline; check AZURE_DEVOPS_PIPELINES", true, "notfound"},
	{azdo.ErrNoRunID, 502, "Azure unclear", "Azure DevOps accepted the run but did not say which it started. The run may have been queued, so the relay did not retry: check the pipeline's runs before trying again.", false, "server"},
	{azdo.ErrBadName, 404, "Unknown webhook", "The webhook name must match [-_A-Za-z0-9]+.", false, "route"},
	{azdo.ErrWebhookNotFound, 502, "Webhook not found", "Azure DevOps cannot find this webhook: check the name in the service connection, and run the pipeline once from its default branch so that Azure registers it.", false, "notfound"},
	{azdo.ErrSignatureRefused, 502, "Signature refused", "Azure DevOps refused the signature, made with the secret's azureWebhookSecret (clientSecret when it has none) and with its previous version if any: the Incoming WebHook service connection must hold that value as its secret and the relay's AZURE_SIGNATURE_HEADER as its header.", false, "signature"},
	{azdo.ErrThrottled, 502, "Throttled", "Azure DevOps is throttling requests and nothing was queued; try again later.", false, "throttled"},
	{azdo.ErrUnavailable, 502, "Azure unavailable", "Azure DevOps is unavailable and nothing was queued; try again.", false, "unavailable"},
	{azdo.ErrTLS, 502, "Azure unreachable", "Azure DevOps's TLS certificate is not trusted: check AZURE_DEVOPS_URL.", false, "tls"},
	{azdo.ErrServerError, 502, "Azure failed", "Azure DevOps failed with a server error. The run may have been queued, so the relay did not retry: check the pipeline's runs and Azure DevOps's status before trying again", true, "server"},
	{azdo.ErrRefused, 502, "Azure refused", "Azure DevOps refused the request, so nothing was queued: check AZURE_DEVOPS_ORG and the target (the webhook's name, or the pipeline's entry in AZURE_DEVOPS_PIPELINES and the run parameters the body gives)", true, "refused"},
	{azdo.ErrNoAnswer, 504, "Timed out", "Azure DevOps did not answer in time. The run may have been queued, so the relay did not retry: check the pipeline's runs before trying again.", false, "timeout"},
	{azdo.ErrNoTime, 504, "Timed out", "The relay ran out of time before its request reached Azure DevOps; nothing was sent, try again.", false, "timeout"},
	{azdo.ErrConnection, 502, "Azure unreachable", "The connection to Azure DevOps broke after the request was sent. The run may have been queued, so the relay did not retry: check the pipeline's runs before trying again.", false, "connection"},
}

var internal = rule{status: http.StatusInternalServerError, label: "Relay error", say: "The relay failed unexpectedly; nothing was sent.", class: "internal"}

// answerKey names the rule of err, for the ledger to keep with a refusal: the text of
// its sentinel, which holds no input.
func answerKey(err error) string {
	rule, _ := classify(err)
	if rule.err == nil {
		return ""
	}
	return rule.err.Error()
}

// ruleOf is the rule answerKey named; internal for a key no rule has.
func ruleOf(key string) rule {
	for _, r := range rules {
		if r.err.Error() == key {
			return r
		}
	}
	return internal
}

// classify returns the rule for err and the sentence for the caller.
func classify(err error) (rule, string) {
	for _, r := range rules {
		if !errors.Is(err, r.err) {
			continue
		}
		if !r.detail {
			return r, r.say
		}
		// The detail is what the error adds to its sentinel's own words.
		_, detail, _ := strings.Cut(err.Error(), r.err.Error())
		detail = strings.TrimLeft(detail, ": ")
		switch {
		case detail == "":
			return r, r.say + "."
		case strings.HasPrefix(detail, "("):
			return r, r.say + " " + detail + "."
		default:
			return r, r.say + ": " + detail + "."
		}
	}
	return internal, internal.say
}
