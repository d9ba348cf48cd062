package sqstest

import (
	"cmp"
	"crypto/md5"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/port-azure-relay/relay/shared/awstest"
)

// queue is one standard queue: its numeric attributes (seconds, bytes) by name, its redrive
// policy and its messages, oldest first.
type queue struct {
	name     string
	attrs    map[string]int
	redrive  *redrivePolicy
	messages []*message
}

type redrivePolicy struct {
	DeadLetterTargetArn string `json:"deadLetterTargetArn"`
	MaxReceiveCount     int    `json:"maxReceiveCount"`
}

type message struct {
	id, body     string
	attrs        map[string]attrValue
	sent         time.Time
	visibleAt    time.Time // hidden before it: delayed while never received, in flight after
	received     int
	first, last  time.Time // the first and the latest receive
	handles      []string  // every receipt handle given; each works until the message goes
	deadLetterOf string    // the source queue's ARN, in a dead-letter queue
}

// attrValue is a message attribute as SQS's JSON carries it.
type attrValue struct {
	DataType    string
	StringValue *string `json:",omitempty"`
	BinaryValue []byte  `json:",omitempty"`
}

// limits are the numeric queue attributes: SQS's default, minimum and maximum.
var limits = map[string][3]int{
	"VisibilityTimeout":      {30, 0, 43200},
	"MessageRetentionPeriod": {345600, 60, 1209600},
	"DelaySeconds":           {0, 0, 900},
	"MaximumMessageSize":     {1 << 20, 1024, 1 << 20},
}

var (
	queueName     = regexp.MustCompile(`^[A-Za-z0-9_-]{1,80}$`)
	attributeName = regexp.MustCompile(`^[A-Za-z0-9_-]([A-Za-z0-9_.-]{0,254}[A-Za-z0-9_-])?$`)
)

// CreateQueue creates a standard queue and returns its URL. attrs are SQS's: VisibilityTimeout,
// MessageRetentionPeriod, DelaySeconds, MaximumMessageSize (strings of numbers, SQS's ranges
// and defaults) and RedrivePolicy ({"deadLetterTargetArn":"<ARN(dlq)>","maxReceiveCount":5},
// the dead-letter queue created first). It panics on what SQS refuses, on any other
// attribute and on a name taken: a test's mistake.
func (s *Server) CreateQueue(name string, attrs map[string]string) (queueURL string) {
	refuse := func(why string) { panic("sqstest: CreateQueue(" + strconv.Quote(name) + "): " + why) }
	if !queueName.MatchString(name) {
		refuse("SQS refuses the name")
	}
	q := &queue{name: name, attrs: map[string]int{}}
	for k, l := range limits {
		q.attrs[k] = l[0]
	}
	for k, v := range attrs {
		l, ok := limits[k]
		n, err := strconv.Atoi(v)
		if k == "RedrivePolicy" {
			if q.redrive = parseRedrive(v); q.redrive == nil {
				refuse("SQS refuses RedrivePolicy " + v)
			}
			continue
		}
		if !ok || err != nil || n < l[1] || n > l[2] {
			refuse("SQS refuses " + k + "=" + v)
		}
		q.attrs[k] = n
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.queues[name] != nil {
		refuse("the queue exists")
	}
	if q.redrive != nil && s.byARN(q.redrive.DeadLetterTargetArn) == nil {
		refuse("its dead-letter queue does not exist")
	}
	s.queues[name] = q
	return s.URL + "/" + awstest.AccountID + "/" + name
}

// parseRedrive reads a RedrivePolicy, or returns nil where SQS refuses it. SQS takes
// maxReceiveCount, 1 to 1,000, as a number or a string.
func parseRedrive(v string) *redrivePolicy {
	var p struct {
		Target string      `json:"deadLetterTargetArn"`
		Max    json.Number `json:"maxReceiveCount"`
	}
	if json.Unmarshal([]byte(v), &p) != nil {
		return nil
	}
	if n, err := strconv.Atoi(p.Max.String()); err == nil && n >= 1 && n <= 1000 {
		return &redrivePolicy{p.Target, n}
	}
	return nil
}

// ARN returns the ARN of the queue named name.
func ARN(name string) string { return arnPrefix + name }

func (s *Server) byARN(arn string) *queue {
	name, ok := strings.CutPrefix(arn, arnPrefix)
	if !ok {
		return nil
	}
	return s.queues[name]
}

// lookup finds the queue that a QueueUrl, http(s)://host/<account>/<name>, names.
func (s *Server) lookup(queueURL string) (*queue, *apiError) {
	u, err := url.Parse(queueURL)
	if err != nil {
		return nil, errNoQueue
	}
	account, name, _ := strings.Cut(strings.TrimPrefix(u.EscapedPath(), "/"), "/")
	if q := s.queues[name]; q != nil && account == awstest.AccountID {
		q.expire(s.now())
		return q, nil
	}
	return nil, errNoQueue
}

// expire drops the messages kept longer than the retention period, counted from the send.
func (q *queue) expire(now time.Time) {
	q.messages = slices.DeleteFunc(q.messages, func(m *message) bool {
		return !now.Before(m.sent.Add(time.Duration(q.attrs["MessageRetentionPeriod"]) * time.Second))
	})
}

// find returns the message that was given handle, or nil when it is gone (deleted, expired,
// moved); an error when handle is not one of q's.
func (q *queue) find(handle string) (*message, *apiError) {
	b, err := base64.StdEncoding.DecodeString(handle)
	if arn, _, _ := strings.Cut(string(b), " "); err != nil || arn != ARN(q.name) {
		return nil, sqsError(404, "ReceiptHandleIsInvalid", `The input receipt handle "`+handle+`" is not a valid receipt handle.`)
	}
	for _, m := range q.messages {
		if slices.Contains(m.handles, handle) {
			return m, nil
		}
	}
	return nil, nil
}

func (q *queue) remove(m *message) {
	q.messages = slices.DeleteFunc(q.messages, func(o *message) bool { return o == m })
}

// bounded returns *v, or def when absent, refusing a value outside [lo, hi] as SQS words it.
func bounded(v *int, def, lo, hi int, param, reason string) (int, *apiError) {
	if v == nil {
		return def, nil
	}
	if *v < lo || *v > hi {
		return 0, invalid(fmt.Sprintf("Value %d for parameter %s is invalid. Reason: %s", *v, param, reason))
	}
	return *v, nil
}

// allowed reports whether SQS takes every character of s: #x9 | #xA | #xD | #x20 to #xD7FF |
// #xE000 to #xFFFD | #x10000 to #x10FFFF.
func allowed(s string) bool {
	for _, r := range s {
		if r != 0x9 && r != 0xA && r != 0xD && (r < 0x20 || r > 0xD7FF && r < 0xE000 || r > 0xFFFD && r < 0x10000) {
			return false
		}
	}
	return true
}

func md5Hex(b []byte) string {
	sum := md5.Sum(b)
	return hex.EncodeToString(sum[:])
}

// attributesMD5 is MD5OfMessageAttributes as SQS computes it: for each attribute, by name,
// the length-prefixed name, type and value, with a byte for the value's transport.
func attributesMD5(attrs map[string]attrValue) string {
	if len(attrs) == 0 {
		return ""
	}
	var b []byte
	field := func(v []byte) { b = append(binary.BigEndian.AppendUint32(b, uint32(len(v))), v...) }
	for _, name := range slices.Sorted(maps.Keys(attrs)) {
		a := attrs[name]
		field([]byte(name))
		field([]byte(a.DataType))
		if a.StringValue != nil {
			b = append(b, 1)
			field([]byte(*a.StringValue))
		} else {
			b = append(b, 2)
			field(a.BinaryValue)
		}
	}
	return md5Hex(b)
}

// attributesSize checks message attributes as SQS does and returns the bytes they count.
func attributesSize(attrs map[string]attrValue) (size int, e *apiError) {
	if len(attrs) > 10 {
		return 0, invalid(fmt.Sprintf("Number of message attributes [%d] exceeds the allowed maximum [10].", len(attrs)))
	}
	for name, a := range attrs {
		kind, _, _ := strings.Cut(a.DataType, ".")
		value := a.BinaryValue
		if kind != "Binary" {
			value = []byte(*cmp.Or(a.StringValue, new(string)))
		}
		switch {
		case !attributeName.MatchString(name) || strings.HasPrefix(strings.ToLower(name), "aws.") || strings.HasPrefix(strings.ToLower(name), "amazon."):
			return 0, invalid("Message (user) attribute name " + name + " is invalid.")
		case kind != "String" && kind != "Number" && kind != "Binary":
			return 0, invalid("The type of message (user) attribute '" + name + "' is invalid. You must use only the following supported type prefixes: Binary, Number, String.")
		case len(value) == 0:
			return 0, invalid("Message (user) attribute '" + name + "' must contain a non-empty value of type '" + kind + "'.")
		}
		size += len(name) + len(a.DataType) + len(value)
	}
	return size, nil
}

func (s *Server) sendMessage(in *request) (any, *apiError) {
	q, e := s.lookup(in.QueueUrl)
	if e != nil {
		return nil, e
	}
	if in.MessageBody == nil || *in.MessageBody == "" {
		return nil, errNoBody
	}
	if !allowed(*in.MessageBody) {
		return nil, sqsError(400, "InvalidMessageContents", "Invalid binary character was found in the message body, the set of allowed characters is #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF")
	}
	delay, e := bounded(in.DelaySeconds, q.attrs["DelaySeconds"], 0, 900, "DelaySeconds", "DelaySeconds must be >= 0 and <= 900.")
	if e != nil {
		return nil, e
	}
	size, e := attributesSize(in.MessageAttributes)
	if e != nil {
		return nil, e
	}
	if max := q.attrs["MaximumMessageSize"]; size+len(*in.MessageBody) > max {
		return nil, invalid(fmt.Sprintf("One or more parameters are invalid. Reason: Message must be shorter than %d bytes.", max))
	}
	now := s.now()
	m := &message{id: awstest.NewUUID(), body: *in.MessageBody, attrs: in.MessageAttributes, sent: now, visibleAt: now.Add(time.Duration(delay) * time.Second)}
	q.messages = append(q.messages, m)
	return struct {
		MessageId, MD5OfMessageBody string
		MD5OfMessageAttributes      string `json:",omitempty"`
	}{m.id, md5Hex([]byte(m.body)), attributesMD5(m.attrs)}, nil
}

type received struct {
	MessageId, ReceiptHandle, MD5OfBody, Body string
	Attributes                                map[string]string    `json:",omitempty"`
	MD5OfMessageAttributes                    string               `json:",omitempty"`
	MessageAttributes                         map[string]attrValue `json:",omitempty"`
}

// receiveMessage returns up to MaxNumberOfMessages visible messages, oldest first, hiding
// each for the visibility timeout; nil when none is visible (serve then polls again). A
// message already received maxReceiveCount times moves to the dead-letter queue instead.
func (s *Server) receiveMessage(in *request) (any, *apiError) {
	q, e := s.lookup(in.QueueUrl)
	if e != nil {
		return nil, e
	}
	max, e := bounded(in.MaxNumberOfMessages, 1, 1, 10, "MaxNumberOfMessages", "Must be between 1 and 10, if provided.")
	if e != nil {
		return nil, e
	}
	visibility, e := bounded(in.VisibilityTimeout, q.attrs["VisibilityTimeout"], 0, 43200, "VisibilityTimeout", "Must be >= 0 and <= 43200, if provided.")
	if e != nil {
		return nil, e
	}
	if _, e := bounded(in.WaitTimeSeconds, 0, 0, 20, "WaitTimeSeconds", "Must be >= 0 and <= 20, if provided."); e != nil {
		return nil, e
	}
	now, out := s.now(), []received(nil)
	for _, m := range slices.Clone(q.messages) {
		if len(out) == max || now.Before(m.visibleAt) {
			continue
		}
		if dlq := s.byARN(q.redrive.target()); dlq != nil && m.received >= q.redrive.MaxReceiveCount {
			q.remove(m)
			m.handles, m.deadLetterOf = nil, ARN(q.name)
			dlq.messages = append(dlq.messages, m)
			continue
		}
		m.received++
		if m.received == 1 {
			m.first = now
		}
		m.last, m.visibleAt = now, now.Add(time.Duration(visibility)*time.Second)
		m.handles = append(m.handles, base64.StdEncoding.EncodeToString([]byte(ARN(q.name)+" "+m.id+" "+rand.Text())))
		attrs := pick(m.attrs, in.MessageAttributeNames)
		out = append(out, received{m.id, m.handles[len(m.handles)-1], md5Hex([]byte(m.body)), m.body,
			m.system(append(in.AttributeNames, in.MessageSystemAttributeNames...)), attributesMD5(attrs), attrs})
	}
	if out == nil {
		return nil, nil
	}
	return struct{ Messages []received }{out}, nil
}

func (p *redrivePolicy) target() string {
	if p == nil {
		return ""
	}
	return p.DeadLetterTargetArn
}

// system returns the message's system attributes that names ask for ("All": every one).
func (m *message) system(names []string) map[string]string {
	ms := func(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }
	out := map[string]string{}
	for k, v := range map[string]string{"ApproximateReceiveCount": strconv.Itoa(m.received), "SenderId": SenderID,
		"ApproximateFirstReceiveTimestamp": ms(m.first), "SentTimestamp": ms(m.sent), "DeadLetterQueueSourceArn": m.deadLetterOf} {
		if v != "" && (slices.Contains(names, "All") || slices.Contains(names, k)) {
			out[k] = v
		}
	}
	return out
}

// pick returns the message attributes that names ask for: "All" or ".*" for every one,
// "prefix.*" for those under the prefix, or exact names.
func pick(attrs map[string]attrValue, names []string) map[string]attrValue {
	out := map[string]attrValue{}
	for name, a := range attrs {
		for _, n := range names {
			prefix, wild := strings.CutSuffix(n, ".*")
			if n == "All" || n == name || wild && (prefix == "" || strings.HasPrefix(name, prefix+".")) {
				out[name] = a
			}
		}
	}
	return out
}

func (s *Server) deleteMessage(in *request) (any, *apiError) {
	q, e := s.lookup(in.QueueUrl)
	if e != nil {
		return nil, e
	}
	m, e := q.find(in.ReceiptHandle)
	if e != nil {
		return nil, e
	}
	q.remove(m) // a message already gone is deleted again without complaint, as in SQS
	return struct{}{}, nil
}

func (s *Server) changeMessageVisibility(in *request) (any, *apiError) {
	q, e := s.lookup(in.QueueUrl)
	if e != nil {
		return nil, e
	}
	visibility, e := bounded(in.VisibilityTimeout, 0, 0, 43200, "VisibilityTimeout", "Must be >= 0 and <= 43200, if provided.")
	if e != nil {
		return nil, e
	}
	m, e := q.find(in.ReceiptHandle)
	if e != nil {
		return nil, e
	}
	now := s.now()
	switch until := now.Add(time.Duration(visibility) * time.Second); {
	case m == nil:
		return nil, invalid("Value " + in.ReceiptHandle + " for parameter ReceiptHandle is invalid. Reason: Message does not exist or is not available for visibility timeout change.")
	case !now.Before(m.visibleAt): // no longer in flight: SQS accepts the change and keeps it visible
	case until.Sub(m.last) > 12*time.Hour:
		return nil, invalid(fmt.Sprintf("Value %d for parameter VisibilityTimeout is invalid. Reason: Total VisibilityTimeout for the message is beyond the limit [43200 seconds]", visibility))
	default:
		m.visibleAt = until
	}
	return struct{}{}, nil
}

func (s *Server) getQueueURL(in *request) (any, *apiError) {
	if s.queues[in.QueueName] == nil || cmp.Or(in.QueueOwnerAWSAccountId, awstest.AccountID) != awstest.AccountID {
		return nil, errNoQueue
	}
	return struct{ QueueUrl string }{s.URL + "/" + awstest.AccountID + "/" + in.QueueName}, nil
}

// unset are attributes SQS knows that a queue here lacks: asked for, they are absent.
var unset = []string{"All", "Policy", "RedrivePolicy", "RedriveAllowPolicy", "KmsMasterKeyId", "KmsDataKeyReusePeriodSeconds",
	"CreatedTimestamp", "LastModifiedTimestamp", "ReceiveMessageWaitTimeSeconds", "SqsManagedSseEnabled"}

func (s *Server) getQueueAttributes(in *request) (any, *apiError) {
	q, e := s.lookup(in.QueueUrl)
	if e != nil {
		return nil, e
	}
	now, counts := s.now(), [3]int{} // visible, in flight, delayed
	for _, m := range q.messages {
		switch {
		case !now.Before(m.visibleAt):
			counts[0]++
		case m.received > 0:
			counts[1]++
		default:
			counts[2]++
		}
	}
	all := map[string]string{"QueueArn": ARN(q.name), "ApproximateNumberOfMessages": strconv.Itoa(counts[0]),
		"ApproximateNumberOfMessagesNotVisible": strconv.Itoa(counts[1]), "ApproximateNumberOfMessagesDelayed": strconv.Itoa(counts[2])}
	for k, v := range q.attrs {
		all[k] = strconv.Itoa(v)
	}
	if q.redrive != nil {
		b, _ := json.Marshal(q.redrive)
		all["RedrivePolicy"] = string(b)
	}
	out := map[string]string{}
	for _, n := range in.AttributeNames {
		if all[n] == "" && !slices.Contains(unset, n) {
			return nil, sqsError(400, "InvalidAttributeName", "Unknown Attribute "+n+".")
		}
		for k, v := range all {
			if n == "All" || n == k {
				out[k] = v
			}
		}
	}
	return struct {
		Attributes map[string]string `json:",omitempty"`
	}{out}, nil
}

// startMessageMoveTask moves the visible messages of a dead-letter queue, at once, to
// DestinationArn or to the queue each came from, as new messages.
func (s *Server) startMessageMoveTask(in *request) (any, *apiError) {
	if _, e := bounded(in.MaxNumberOfMessagesPerSecond, 0, 1, 500, "MaxNumberOfMessagesPerSecond", "Must be between 1 and 500."); e != nil {
		return nil, e
	}
	notFound := func(param string) *apiError {
		return sqsError(404, "ResourceNotFoundException", "The resource that you specified for the "+param+" parameter doesn't exist.")
	}
	src := s.byARN(in.SourceArn)
	if src == nil {
		return nil, notFound("SourceArn")
	}
	if !slices.ContainsFunc(slices.Collect(maps.Values(s.queues)), func(q *queue) bool { return q.redrive.target() == in.SourceArn }) {
		return nil, invalid("Source queue must be configured as a Dead Letter Queue.")
	}
	if in.DestinationArn != "" && s.byARN(in.DestinationArn) == nil {
		return nil, notFound("DestinationArn")
	}
	now := s.now()
	src.expire(now)
	for _, m := range slices.Clone(src.messages) {
		if dst := s.byARN(cmp.Or(in.DestinationArn, m.deadLetterOf)); dst != nil && !now.Before(m.visibleAt) {
			src.remove(m)
			dst.messages = append(dst.messages, &message{id: awstest.NewUUID(), body: m.body, attrs: m.attrs, sent: now,
				visibleAt: now.Add(time.Duration(dst.attrs["DelaySeconds"]) * time.Second)})
		}
	}
	handle, _ := json.Marshal(map[string]string{"taskId": awstest.NewUUID(), "sourceArn": in.SourceArn})
	return struct{ TaskHandle string }{base64.StdEncoding.EncodeToString(handle)}, nil
}
