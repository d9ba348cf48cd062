// Package ledger keeps one record per delivery in DynamoDB, so that a Port run or an
// AWS event queues at most one pipeline run, whichever containers, retries and
// replays it meets: a delivery is claimed with a conditional write before anything
// is sent, and its outcome recorded after Azure answers.
//
// It is the idempotency record AWS Powertools keeps, with one difference a deploy
// needs: a claim whose invocation died mid-delivery is never given to a second one.
// Azure may have queued the run, so past its deadline the claim reads as "may have
// queued", not as free (Powertools re-allows it: python#8049).
package ledger

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
)

// Records expire (DynamoDB's TTL deletes them) this long after the claim: a repeat
// within it is known. Lambda keeps an async event for up to 6 hours.
const (
	DefaultTTL = 24 * time.Hour
	MinTTL     = time.Hour
	MaxTTL     = 7 * 24 * time.Hour
)

// State is how far a delivery got.
type State string

// The states a record is in.
const (
	InProgress    State = "inProgress"    // claimed; Azure not yet answered
	Delivered     State = "delivered"     // Azure accepted
	MayHaveQueued State = "mayHaveQueued" // no clear answer: Azure may have queued the run
	Refused       State = "refused"       // refused, nothing queued, and that answer is final
	Queued        State = "queued"        // put aside on the delivery queue until Azure can take it
	Expired       State = "expired"       // waited on the queue too long: dead-lettered, never sent
)

// Errors of Claim, Complete and Release. Claim's first two come as a *Held with the
// record that holds the key.
var (
	ErrDuplicate   = errors.New("ledger: already delivered, or may have been")
	ErrInProgress  = errors.New("ledger: being delivered by another invocation")
	ErrUnavailable = errors.New("ledger: DynamoDB could not be reached")
	ErrNotOwner    = errors.New("ledger: the claim is not this invocation's")
	// ErrGone means Take found no record of the key: it expired (DynamoDB's TTL), or
	// was never written. Whether the delivery was made cannot be known.
	ErrGone = errors.New("ledger: no record of the delivery")
	// ErrNotThis means Take found the key queued for another body than the message's.
	ErrNotThis = errors.New("ledger: the queued delivery is not this message's")
)

// Record is what the ledger holds of one delivery: ids and outcomes, never a secret
// or a payload.
type Record struct {
	Key         string    // the delivery's key (Key…)
	State       State     // set by the ledger
	Target      string    // the webhook (or pipeline) it went to
	Door        string    // which kind Target is: "webhook", "pipeline"
	RunID       string    // the Port run id, when there is one
	AzureStatus int       // Azure's answer; 0 for none
	AzureRunID  string    // the Azure run id, when the target gives one
	Link        string    // the Azure run's page, when the target gives one
	Cause       string    // for MayHaveQueued and Refused: what the failure was (the relay's key for its answer), or "deadline"
	Deadline    time.Time // for InProgress: when the claiming invocation's own deadline passes
	Expires     time.Time // when DynamoDB's TTL may delete it; for Complete, a new expiry (zero: unchanged)
	Digest      string    // for Queued: the queued message's body, hashed (Digest)
	// Unsent, for Take: the owner (Claim.Owner) of a claim that sent nothing and could
	// not put its record back to queued; Take takes the record from it.
	Unsent string
}

// Held is Claim's refusal: ErrDuplicate or ErrInProgress, with the record that holds
// the key (no second read: DynamoDB returns it with the failed condition).
type Held struct {
	Record Record
	Err    error
	holder Claim // for a claim past its deadline: who held it, for Abandon
}

func (h *Held) Error() string { return h.Err.Error() }
func (h *Held) Unwrap() error { return h.Err }

// DB is the DynamoDB client's subset the ledger uses; *dynamodb.Client is one.
type DB interface {
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
}

// Ledger is one DynamoDB table: partition key "id" (String), TTL on "expiresAt"
// (Number, epoch seconds). Its fields are set once; it is then safe for concurrent use.
type Ledger struct {
	DB    DB
	Table string
	TTL   time.Duration    // DefaultTTL when zero
	Now   func() time.Time // nil: time.Now
}

// Claim is a claimed key: what Complete and Release need to change only this claim.
type Claim struct {
	Key   string
	owner string
}

// Owner names the claim: a random token, no secret. A drain that sent nothing and
// could not give its record back puts the message back carrying it (Record.Unsent).
func (c Claim) Owner() string { return c.owner }

// Attribute names. "state" and "owner" are DynamoDB reserved words: every expression
// names attributes through placeholders.
const (
	attrID          = "id"
	attrState       = "state"
	attrOwner       = "owner"
	attrExpires     = "expiresAt" // the table's TTL attribute
	attrDeadline    = "deadline"  // epoch milliseconds
	attrTarget      = "target"
	attrDoor        = "door"
	attrRunID       = "runId"
	attrAzureStatus = "azureStatus"
	attrAzureRunID  = "azureRunId"
	attrLink        = "link"
	attrCause       = "cause"
	attrCreated     = "createdAt"
	attrDigest      = "digest"
)

// Claim claims r.Key for a delivery that must end by deadline (the invocation's own):
// one conditional PutItem. A key nobody holds, or whose record has expired (TTL
// deletes lazily), is claimed. Otherwise it returns a *Held: ErrInProgress while the
// holder's deadline has not passed, else ErrDuplicate, its record's state Delivered
// or MayHaveQueued (a holder that died mid-delivery reads as MayHaveQueued). With
// ErrUnavailable it still returns the claim it tried, for Release.
func (l *Ledger) Claim(ctx context.Context, r Record, deadline time.Time) (Claim, error) {
	owner := newOwner()
	err := l.put(ctx, r, InProgress, owner, func(item map[string]types.AttributeValue) {
		item[attrDeadline] = num(deadline.UnixMilli())
	})
	if err != nil && !errors.Is(err, ErrUnavailable) {
		return Claim{}, err
	}
	// With ErrUnavailable the write may have landed with its answer lost: the claim is
	// returned too, so that a caller that sends nothing can release it (Release deletes
	// only its own).
	return Claim{Key: r.Key, owner: owner}, err
}

// Refuse records, for a key nobody holds, that its delivery was refused before
// anything was sent and that this refusal is its final answer: a later arrival of the
// key gets it back as a duplicate. One conditional PutItem. A key already held gives
// Claim's *Held refusals, and no record is changed.
func (l *Ledger) Refuse(ctx context.Context, r Record) error {
	return l.put(ctx, r, Refused, newOwner(), func(item map[string]types.AttributeValue) {
		putIf(item, attrCause, r.Cause)
	})
}

// put writes r in state for a key nobody holds, or whose record has expired; more
// adds attributes of the state. A key held gives a *Held.
func (l *Ledger) put(ctx context.Context, r Record, state State, owner string, more func(map[string]types.AttributeValue)) error {
	now := l.now()
	item := map[string]types.AttributeValue{
		attrID:      str(r.Key),
		attrState:   str(string(state)),
		attrOwner:   str(owner),
		attrExpires: num(now.Add(l.ttl()).Unix()),
		attrCreated: num(now.Unix()),
	}
	putIf(item, attrTarget, r.Target)
	putIf(item, attrDoor, r.Door)
	putIf(item, attrRunID, r.RunID)
	more(item)
	_, err := l.DB.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                           &l.Table,
		Item:                                item,
		ConditionExpression:                 aws.String("attribute_not_exists(#id) OR #exp < :now"),
		ExpressionAttributeNames:            map[string]string{"#id": attrID, "#exp": attrExpires},
		ExpressionAttributeValues:           map[string]types.AttributeValue{":now": num(now.Unix())},
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	var failed *types.ConditionalCheckFailedException
	switch {
	case err == nil:
		return nil
	case errors.As(err, &failed):
		held := decode(failed.Item)
		if held.Key == "" {
			held.Key = r.Key
		}
		if owned(failed.Item, owner) {
			return nil // our own write, whose answer was lost and which the SDK sent again
		}
		if held.State != InProgress {
			return &Held{Record: held, Err: ErrDuplicate}
		}
		if now.Before(held.Deadline) {
			return &Held{Record: held, Err: ErrInProgress}
		}
		held.State, held.Cause = MayHaveQueued, "deadline"
		return &Held{Record: held, Err: ErrDuplicate}
	default:
		return unavailable(ctx, err)
	}
}

// Complete records the outcome of a claimed delivery: Delivered, MayHaveQueued after
// an ambiguous failure, Refused as a final answer, Queued when it was put aside for a
// later attempt, or Expired when it waited too long (out.State says which), with
// Azure's status and, when the target gives them, its run id and link, or the
// failure's Cause, and for Queued the message's Digest. The claim stays this
// invocation's through Queued, so that it can still record what became of putting
// it aside (InProgress again, when the message could not be written). One
// conditional UpdateItem.
func (l *Ledger) Complete(ctx context.Context, c Claim, out Record) error {
	names := map[string]string{"#state": attrState, "#owner": attrOwner, "#azureStatus": attrAzureStatus}
	values := map[string]types.AttributeValue{
		":state": str(string(out.State)), ":owner": str(c.owner), ":inProgress": str(string(InProgress)),
		":queued": str(string(Queued)), ":azureStatus": num(int64(out.AzureStatus)),
	}
	set := "SET #state = :state, #azureStatus = :azureStatus"
	for _, kv := range [][2]string{{attrAzureRunID, out.AzureRunID}, {attrLink, out.Link}, {attrCause, out.Cause}, {attrDigest, out.Digest}} {
		if kv[1] != "" {
			names["#"+kv[0]], values[":"+kv[0]] = kv[0], str(kv[1])
			set += ", #" + kv[0] + " = :" + kv[0]
		}
	}
	expires := out.Expires
	if out.State == Queued {
		// A delivery waiting on the queue keeps its record at least the TTL from now, and
		// as long as the caller says it may wait.
		expires = later(l.now().Add(l.ttl()), out.Expires)
	}
	if !expires.IsZero() {
		names["#exp"], values[":exp"] = attrExpires, num(expires.Unix())
		set += ", #exp = :exp"
	}
	_, err := l.DB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 &l.Table,
		Key:                       map[string]types.AttributeValue{attrID: str(c.Key)},
		UpdateExpression:          &set,
		ConditionExpression:       aws.String("(#state = :inProgress OR #state = :queued) AND #owner = :owner"),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: values,
	})
	return l.changed(ctx, err)
}

// Settle writes the outcome of a delivery whose claim may not have landed (DynamoDB
// refused or lost it, and the delivery went on): the whole record, for a key nobody
// holds or still held by this claim. A key someone else holds is ErrNotOwner, and
// nothing is changed. One conditional UpdateItem, which makes the item when there
// is none.
func (l *Ledger) Settle(ctx context.Context, c Claim, out Record) error {
	now := l.now()
	names := map[string]string{"#id": attrID, "#state": attrState, "#owner": attrOwner}
	values := map[string]types.AttributeValue{":inProgress": str(string(InProgress)), ":owner": str(c.owner)}
	set := "SET #owner = :owner"
	add := func(attr string, v types.AttributeValue) {
		names["#"+attr], values[":"+attr] = attr, v
		set += ", #" + attr + " = :" + attr
	}
	add(attrState, str(string(out.State)))
	names["#state"] = attrState // used by the condition too
	add(attrExpires, num(now.Add(l.ttl()).Unix()))
	add(attrCreated, num(now.Unix()))
	add(attrAzureStatus, num(int64(out.AzureStatus)))
	for _, kv := range [][2]string{{attrTarget, out.Target}, {attrDoor, out.Door}, {attrRunID, out.RunID},
		{attrAzureRunID, out.AzureRunID}, {attrLink, out.Link}, {attrCause, out.Cause}, {attrDigest, out.Digest}} {
		if kv[1] != "" {
			add(kv[0], str(kv[1]))
		}
	}
	_, err := l.DB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 &l.Table,
		Key:                       map[string]types.AttributeValue{attrID: str(c.Key)},
		UpdateExpression:          &set,
		ConditionExpression:       aws.String("attribute_not_exists(#id) OR (#state = :inProgress AND #owner = :owner)"),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: values,
	})
	return l.changed(ctx, err)
}

// Take claims a queued delivery for the invocation that drains the queue, to end by
// deadline: one conditional UpdateItem that holds only while the key is queued for
// the body whose digest r carries and for r's target: a message is sent only where,
// and as, it was put aside. A redriven message (an operator moved it back from the
// dead-letter queue) may take an expired key too: it was never sent; a message that
// names an unsent claim (Record.Unsent) may take the key from that claim. Otherwise it
// returns Claim's *Held refusals (delivered, may have queued, refused: never again; in
// progress: another invocation has it now), ErrNotThis for a key queued for another
// body or target, or ErrGone when there is no record at all. With ErrUnavailable it
// still returns the claim it tried, so that the caller can put it back (Complete as
// Queued changes only its own).
func (l *Ledger) Take(ctx context.Context, r Record, redriven bool, deadline time.Time) (Claim, error) {
	owner := newOwner()
	values := map[string]types.AttributeValue{
		":queued": str(string(Queued)), ":digest": str(r.Digest), ":target": str(r.Target), ":door": str(r.Door),
		":inProgress": str(string(InProgress)), ":owner": str(owner), ":deadline": num(deadline.UnixMilli()),
	}
	states := "#state = :queued"
	if redriven {
		states += " OR #state = :expired"
		values[":expired"] = str(string(Expired))
	}
	if r.Unsent != "" {
		states += " OR (#state = :inProgress AND #owner = :unsent)"
		values[":unsent"] = str(r.Unsent)
	}
	condition := "(" + states + ") AND #digest = :digest AND #target = :target AND #door = :door"
	_, err := l.DB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:           &l.Table,
		Key:                 map[string]types.AttributeValue{attrID: str(r.Key)},
		UpdateExpression:    aws.String("SET #state = :inProgress, #owner = :owner, #deadline = :deadline"),
		ConditionExpression: &condition,
		ExpressionAttributeNames: map[string]string{"#state": attrState, "#digest": attrDigest, "#target": attrTarget, "#door": attrDoor,
			"#owner": attrOwner, "#deadline": attrDeadline},
		ExpressionAttributeValues:           values,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	var failed *types.ConditionalCheckFailedException
	switch {
	case err == nil:
		return Claim{Key: r.Key, owner: owner}, nil
	case !errors.As(err, &failed):
		return Claim{Key: r.Key, owner: owner}, unavailable(ctx, err)
	case len(failed.Item) == 0:
		return Claim{}, ErrGone
	}
	held := decode(failed.Item)
	switch {
	case owned(failed.Item, owner):
		return Claim{Key: r.Key, owner: owner}, nil // our own write, whose answer was lost and which the SDK sent again
	case (held.State == Queued || held.State == Expired) && (held.Digest != r.Digest || held.Target != r.Target || held.Door != r.Door):
		return Claim{}, ErrNotThis
	case held.State == Expired:
		return Claim{}, &Held{Record: held, Err: ErrDuplicate} // expired, and this is no redrive: it stays so
	case held.State != InProgress:
		return Claim{}, &Held{Record: held, Err: ErrDuplicate}
	case l.now().Before(held.Deadline):
		return Claim{}, &Held{Record: held, Err: ErrInProgress}
	}
	held.State, held.Cause = MayHaveQueued, "deadline"
	return Claim{}, &Held{Record: held, Err: ErrDuplicate, holder: Claim{Key: r.Key, owner: ownerOf(failed.Item)}}
}

// Abandon writes what Take read of a claim that ended without an outcome (h, whose
// cause is "deadline"): may have queued, for good, so that no copy naming that claim
// (Record.Unsent) takes it afterwards. ErrNotOwner: the claim is no longer that one's
// (a copy took it back); the caller tells nobody it may have been sent. One conditional
// UpdateItem.
func (l *Ledger) Abandon(ctx context.Context, h *Held) error {
	if h == nil || h.holder.owner == "" {
		return ErrNotOwner
	}
	_, err := l.DB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                &l.Table,
		Key:                      map[string]types.AttributeValue{attrID: str(h.holder.Key)},
		UpdateExpression:         aws.String("SET #state = :mayHaveQueued, #cause = :deadline"),
		ConditionExpression:      aws.String("#state = :inProgress AND #owner = :owner"),
		ExpressionAttributeNames: map[string]string{"#state": attrState, "#cause": attrCause, "#owner": attrOwner},
		ExpressionAttributeValues: map[string]types.AttributeValue{":mayHaveQueued": str(string(MayHaveQueued)), ":deadline": str("deadline"),
			":inProgress": str(string(InProgress)), ":owner": str(h.holder.owner)},
	})
	return l.changed(ctx, err)
}

// Release deletes a claim whose delivery Azure refused in a way that queued nothing,
// so that a retry after the fix is delivered (Lambda retries an AWS event; Port never
// retries, so an HTTP invocation's refusal is Completed as Refused instead). The claim
// may have put the record in queued, its answer lost, before any message was written:
// it is deleted all the same. One conditional DeleteItem.
func (l *Ledger) Release(ctx context.Context, c Claim) error {
	_, err := l.DB.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName:                &l.Table,
		Key:                      map[string]types.AttributeValue{attrID: str(c.Key)},
		ConditionExpression:      aws.String("(#state = :inProgress OR #state = :queued) AND #owner = :owner"),
		ExpressionAttributeNames: map[string]string{"#state": attrState, "#owner": attrOwner},
		ExpressionAttributeValues: map[string]types.AttributeValue{":inProgress": str(string(InProgress)), ":queued": str(string(Queued)),
			":owner": str(c.owner)},
	})
	return l.changed(ctx, err)
}

func (l *Ledger) changed(ctx context.Context, err error) error {
	var failed *types.ConditionalCheckFailedException
	switch {
	case err == nil:
		return nil
	case errors.As(err, &failed):
		return ErrNotOwner
	default:
		return unavailable(ctx, err)
	}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func (l *Ledger) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

func (l *Ledger) ttl() time.Duration {
	if l.TTL <= 0 {
		return DefaultTTL
	}
	return l.TTL
}

// unavailable names the class of a failed call (DynamoDB's error code, or the
// network's) without the SDK's text, which carries the endpoint and request.
func unavailable(ctx context.Context, err error) error {
	var apiErr smithy.APIError
	switch {
	case errors.As(err, &apiErr):
		return fmt.Errorf("%w: %s", ErrUnavailable, apiErr.ErrorCode())
	case ctx.Err() != nil:
		return fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
	default:
		var timeout interface{ Timeout() bool }
		if errors.As(err, &timeout) && timeout.Timeout() {
			return fmt.Errorf("%w: timed out", ErrUnavailable)
		}
		return fmt.Errorf("%w: request failed", ErrUnavailable)
	}
}

func newOwner() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func owned(item map[string]types.AttributeValue, owner string) bool {
	return ownerOf(item) == owner
}

func ownerOf(item map[string]types.AttributeValue) string {
	v, _ := item[attrOwner].(*types.AttributeValueMemberS)
	if v == nil {
		return ""
	}
	return v.Value
}

func decode(item map[string]types.AttributeValue) Record {
	s := func(k string) string {
		if v, ok := item[k].(*types.AttributeValueMemberS); ok {
			return v.Value
		}
		return ""
	}
	n := func(k string) int64 {
		if v, ok := item[k].(*types.AttributeValueMemberN); ok {
			i, _ := strconv.ParseInt(v.Value, 10, 64)
			return i
		}
		return 0
	}
	r := Record{
		Key: s(attrID), State: State(s(attrState)), Target: s(attrTarget), Door: s(attrDoor), RunID: s(attrRunID),
		AzureStatus: int(n(attrAzureStatus)), AzureRunID: s(attrAzureRunID), Link: s(attrLink), Cause: s(attrCause), Digest: s(attrDigest),
	}
	if ms := n(attrDeadline); ms > 0 {
		r.Deadline = time.UnixMilli(ms)
	}
	if secs := n(attrExpires); secs > 0 {
		r.Expires = time.Unix(secs, 0)
	}
	return r
}

func str(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }

func num(n int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}

func putIf(item map[string]types.AttributeValue, k, v string) {
	if v != "" {
		item[k] = str(v)
	}
}

// Errors lists the package's sentinel errors, for the answer tables of the functions
// that meet them: a test fails when one has no answer.
var Errors = []error{
	ErrDuplicate, ErrInProgress, ErrUnavailable, ErrNotOwner, ErrGone, ErrNotThis,
}
