package e2e

import (
	"crypto/rand"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/port-azure-relay/relay/shared/azdo/azdotest"
	"github.com/port-azure-relay/relay/shared/runstatus/servicehooktest"
	"github.com/port-azure-relay/relay/shared/secret/smtest"
	"github.com/port-azure-relay/relay/shared/signature"
)

// The values the rotation tests store; the log audit looks for every one of them.
var rotationSecrets = []string{
	"e2e-azure-webhook-secret-1-Hq3", "e2e-azure-webhook-secret-2-Lk8", "e2e-azure-webhook-secret-3-Vb5",
	"e2e-azure-never-stored-Pz1", "e2e-port-client-secret-rotated-Nc6", rotatedHookPassword,
}

const rotatedHookPassword = "e2e-service-hook-password-rotated-Rm4"

// TestServiceHookPasswordRotation: the operator stores a new serviceHookPassword, and
// Azure's subscriptions are changed one by one after it. Nothing is refused in between
// (a 401 would put a subscription on probation): the previous password is accepted for
// the rotation's grace, and the new one at once, in the same warm container.
func TestServiceHookPasswordRotation(t *testing.T) {
	requireRIE(t)
	t.Parallel()
	w := newStatusWorld(t)
	send := func(step, password, state string, want int) {
		t.Helper()
		runID := "r_hookrot" + rand.Text()[:10]
		w.port.CreateRuns(runID)
		w.sender.Password = password
		d, err := w.sender.Send(t.Context(), servicehooktest.Notification(azureRun(301, runID, state, "succeeded")))
		if status, _ := d.Last(); (err != nil && want == 200) || status != want {
			t.Errorf("%s: %d %v, want %d", step, status, err, want)
		}
	}
	send("before the rotation", hookPassword, "inProgress", 200)
	w.sm.Put(secretName, hookSecret(rotatedHookPassword))
	send("a subscription changed first sends the new password", rotatedHookPassword, "inProgress", 200)
	send("a subscription not yet changed sends the old one", hookPassword, "completed", 200)
	send("the new one again", rotatedHookPassword, "completed", 200)
	send("a password never stored is refused", "e2e-never-a-hook-password", "completed", 401)
	previous := 0
	for _, line := range w.fn.Lines() {
		if strings.Contains(line, `"password":"AWSPREVIOUS"`) {
			previous++
		}
	}
	if previous != 1 {
		t.Errorf("%d lines say the previous password was used, want 1 (the subscription not yet changed)", previous)
	}
	statusCases.Add(1)
}

// stored is the secret JSON the operator keeps: Port's credentials and Azure's own secret.
func stored(clientSecret, azure string) string {
	return fmt.Sprintf(`{"clientSecret":%q,"azureWebhookSecret":%q}`, clientSecret, azure)
}

// rotationWorld is a relay whose secret holds azureWebhookSecret azure, and Azure's
// service connection holding azureHolds.
func rotationWorld(t *testing.T, ttl string, azureHolds string, values ...string) *world {
	t.Helper()
	w := &world{sm: smtest.New()}
	t.Cleanup(w.sm.Close)
	for _, v := range values {
		w.sm.Put(secretName, v)
	}
	w.az = azdotest.New(org, azdotest.Webhook{Name: hookDeploy, Secret: azureHolds, Header: signature.AzureDefaultHeader})
	t.Cleanup(w.az.Close)
	w.relay = start(t, relayBin, faultTimeout, relayEnv(w.sm, w.az.URL, "SECRET_CACHE_TTL="+ttl))
	return w
}

// sendSigned sends a Port invocation signed with clientSecret and checks what came
// back and what Azure saw: its status, the deliveries it made and how many Azure
// accepted (a run queued), and that no secret is in the answer.
func sendSigned(t *testing.T, w *world, step, clientSecret string, status, deliveries, queued int) result {
	t.Helper()
	before := w.az.Count()
	body := portBody("r_rot_" + rand.Text()[:8])
	ev := shapes[1].make("POST", "/", portHeaders(clientSecret, time.Now().Unix(), body), body)
	r := invoke(t, w.relay, ev)
	got := w.az.Deliveries()[before:]
	accepted := 0
	for _, d := range got {
		if d.Verified {
			accepted++
		}
	}
	if r.status != status || len(got) != deliveries || accepted != queued {
		t.Errorf("%s: %d %v with %d deliveries, %d queued; want %d with %d deliveries, %d queued",
			step, r.status, r.body, len(got), accepted, status, deliveries, queued)
	}
	seen := map[string]bool{}
	for _, d := range got {
		sig := d.Header.Get(signature.AzureDefaultHeader)
		if seen[sig] {
			t.Errorf("%s: Azure got the same signature twice", step)
		}
		seen[sig] = true
	}
	if status == 502 {
		hasWords(t, step, r.errMsg, "refused the signature", "azureWebhookSecret")
	}
	oneLogLine(t, r)
	for _, s := range append(rotationSecrets, portSecret) {
		if strings.Contains(fmt.Sprint(r.body), s) {
			t.Errorf("%s: the answer holds a secret value", step)
		}
	}
	return r
}

// TestAzureRotation: the operator stores a new azureWebhookSecret (put-secret-value)
// and changes the Incoming WebHook service connection after it, before it, or never.
func TestAzureRotation(t *testing.T) {
	requireRIE(t)
	t.Parallel()
	az1, az2, az3, never := rotationSecrets[0], rotationSecrets[1], rotationSecrets[2], rotationSecrets[3]

	t.Run("service connection changed after, on a container that reads the new value first", func(t *testing.T) {
		t.Parallel()
		w := rotationWorld(t, "1s", az1, stored(portSecret, az1))
		sendSigned(t, w, "before the rotation", portSecret, 200, 1, 1)
		w.sm.Put(secretName, stored(portSecret, az2))
		time.Sleep(1100 * time.Millisecond) // the cache expires: the container reads az2
		r := sendSigned(t, w, "stored, Azure not yet changed", portSecret, 200, 2, 1)
		if line := oneLogLine(t, r); line["azureSecret"] != "AWSPREVIOUS" || line["attempts"] != float64(2) {
			t.Errorf("log line %v: want azureSecret AWSPREVIOUS after 2 attempts", line)
		}
		sendSigned(t, w, "stored, Azure not yet changed, again", portSecret, 200, 2, 1)
		w.az.SetSecret(hookDeploy, az2)
		sendSigned(t, w, "Azure changed", portSecret, 200, 1, 1)
	})

	t.Run("service connection changed after, on a warm container with a 1 h cache", func(t *testing.T) {
		t.Parallel()
		w := rotationWorld(t, "1h", az1, stored(portSecret, az1))
		sendSigned(t, w, "before the rotation", portSecret, 200, 1, 1)
		w.sm.Put(secretName, stored(portSecret, az2))
		sendSigned(t, w, "stored: the cached value still matches Azure", portSecret, 200, 1, 1)
		if n := w.sm.StageCalls("AWSPREVIOUS"); n != 0 {
			t.Errorf("AWSPREVIOUS read %d times while nothing was refused, want 0", n)
		}
		w.az.SetSecret(hookDeploy, az2)
		r := sendSigned(t, w, "Azure changed: the stale copy is refused, the value read again passes", portSecret, 200, 2, 1)
		if line := oneLogLine(t, r); line["azureSecret"] != "AWSCURRENT" {
			t.Errorf("log line %v: want azureSecret AWSCURRENT", line)
		}
		sendSigned(t, w, "then", portSecret, 200, 1, 1)
	})

	t.Run("service connection changed before the value is stored", func(t *testing.T) {
		t.Parallel()
		w := rotationWorld(t, "1h", az1, stored(portSecret, az1))
		sendSigned(t, w, "before the rotation", portSecret, 200, 1, 1)
		w.az.SetSecret(hookDeploy, az2)
		sendSigned(t, w, "Azure changed, nothing stored: nothing can sign", portSecret, 502, 1, 0)
		sendSigned(t, w, "again: no loop", portSecret, 502, 1, 0)
		w.sm.Put(secretName, stored(portSecret, az2))
		sendSigned(t, w, "stored: the very next request passes", portSecret, 200, 2, 1)
		sendSigned(t, w, "then", portSecret, 200, 1, 1)
	})

	t.Run("service connection never changed to a stored value", func(t *testing.T) {
		t.Parallel()
		w := rotationWorld(t, "1h", never, stored(portSecret, az1), stored(portSecret, az2), stored(portSecret, az3))
		for i := range 3 {
			sendSigned(t, w, fmt.Sprintf("request %d: current and previous refused", i+1), portSecret, 502, 2, 0)
		}
	})
}

// TestPortRotation: Port's clientSecret is reset in Port, then stored; a warm
// container with a 1 h cache relays the very next request Port signs with it.
func TestPortRotation(t *testing.T) {
	requireRIE(t)
	t.Parallel()
	azure, rotated := rotationSecrets[0], rotationSecrets[4]
	w := rotationWorld(t, "1h", azure, stored(portSecret, azure))
	sendSigned(t, w, "before the rotation", portSecret, 200, 1, 1)
	sendSigned(t, w, "warm", portSecret, 200, 1, 1)

	w.sm.Put(secretName, stored(rotated, azure))
	calls := w.sm.Calls()
	sendSigned(t, w, "the first request signed with the stored value", rotated, 200, 1, 1)
	if n := w.sm.Calls() - calls; n != 1 {
		t.Errorf("%d Secrets Manager reads to pick the rotation up, want 1", n)
	}
	sendSigned(t, w, "the next", rotated, 200, 1, 1)
	sendSigned(t, w, "the old clientSecret, which Port no longer holds", portSecret, 401, 0, 0)

	calls = w.sm.Calls()
	for i := range 5 {
		sendSigned(t, w, fmt.Sprintf("forged %d", i+1), "a guessed secret", 401, 0, 0)
	}
	if n := w.sm.Calls() - calls; n > 1 {
		t.Errorf("5 forged requests made %d Secrets Manager reads, want at most 1 (one per %s)", n, "MinRenewInterval")
	}
	if n := w.sm.StageCalls("AWSPREVIOUS"); n != 0 {
		t.Errorf("AWSPREVIOUS read %d times for Port's rotation, want 0: Port no longer signs with it", n)
	}
}
