package relay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/port-azure-relay/relay/shared/azdo"
	"github.com/port-azure-relay/relay/shared/payload"
	"github.com/port-azure-relay/relay/shared/portapi"
	"github.com/port-azure-relay/relay/shared/secret"
)

// Deliverer posts a signed body to an incoming webhook; *azdo.Client is one.
type Deliverer interface {
	Deliver(ctx context.Context, webhook string, body, secret []byte) (azdo.Result, error)
}

// Webhook is the target of an Azure DevOps incoming webhook: the body goes as Port sent
// it, signed with the secret's Azure key. The pipeline puts the Port run id in its
// run's name, so the status function follows it whatever happened to the delivery.
func Webhook(name string, azure Deliverer) Target { return webhook{name, azure} }

type webhook struct {
	name  string
	azure Deliverer
}

func (w webhook) Name() string    { return w.name }
func (w webhook) Door() string    { return "webhook" }
func (w webhook) Subject() string { return "The pipeline behind webhook " + w.name }

// Prepare refuses a body with a top-level key an incoming webhook reserves with a type
// that makes Azure drop the run without a word.
func (w webhook) Prepare(body []byte, ids payload.IDs, creds secret.Credentials) (Prepared, error) {
	if ids.Reserved != nil {
		return Prepared{}, ids.Reserved
	}
	return Prepared{Body: body, Creds: creds}, nil
}

// Send signs with the current Azure key. When Azure refuses the signature, which
// queues nothing, it signs once more with the value Azure may hold instead: the
// current one read again, when this container's copy is stale, or else the previous
// version, while the service connection still holds it. Never more than these two.
func (w webhook) Send(ctx context.Context, p Prepared, keys Keys) (Sent, error) {
	s := Sent{Followed: true}
	key := p.Creds.AzureKey()
	err := w.post(ctx, p.Body, key, &s)
	if errors.Is(err, azdo.ErrSignatureRefused) {
		if next, which := keys.other(ctx, key); next != nil {
			s.Rotated = which
			err = w.post(ctx, p.Body, next, &s)
		}
	}
	return s, err
}

// post makes one delivery, adding its attempts and time to s.
func (w webhook) post(ctx context.Context, body, key []byte, s *Sent) error {
	start := time.Now()
	res, err := w.azure.Deliver(ctx, w.name, body, key)
	s.Took += time.Since(start)
	status, attempts := azureAnswer(res.Status, res.Attempts, err)
	s.Status, s.Attempts = status, s.Attempts+attempts
	return err
}

func (w webhook) Started(Sent) (portapi.RunUpdate, string) {
	return portapi.RunUpdate{}, fmt.Sprintf("Azure DevOps accepted webhook %s (pipeline queued).", w.name)
}

// other returns the Azure key to try after refused was refused, and which value it
// is, or nil when there is none other: the current value as Secrets Manager holds it
// now, if it differs, else AWSPREVIOUS. Only authenticated requests get here, so the
// read again costs what today's traffic does, not what an attacker wants.
func (k Keys) other(ctx context.Context, refused []byte) ([]byte, string) {
	k.Current.Invalidate()
	current, err := k.Current.Get(ctx) // the cached value, if the read fails
	if err != nil {
		return nil, ""
	}
	if key := current.AzureKey(); !bytes.Equal(key, refused) {
		return key, secret.StageCurrent
	}
	if k.Previous == nil {
		return nil, ""
	}
	previous, err := k.Previous.Get(ctx, current)
	if key := previous.AzureKey(); err != nil || len(key) == 0 || bytes.Equal(key, refused) {
		return nil, ""
	}
	return previous.AzureKey(), secret.StagePrevious
}
