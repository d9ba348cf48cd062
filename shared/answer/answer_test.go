package answer_test

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/port-azure-relay/relay/shared/answer"
)

var (
	errGeneral  = errors.New("pkg: refused")
	errSpecific = fmt.Errorf("%w: not found", errGeneral) // the specific wraps the general
	errOther    = errors.New("pkg: unavailable")
	errUnknown  = errors.New("pkg: nobody answers this")
)

var table = answer.Table{
	Rows: map[error]answer.Answer{
		errGeneral:  {Status: http.StatusBadGateway, Class: "refused", Say: "Refused", Detail: true, Label: "Refused"},
		errSpecific: {Status: http.StatusNotFound, Class: "notfound", Say: "Not found.", Label: "Not found"},
		errOther:    {Status: http.StatusServiceUnavailable, Class: "unavailable", Say: "Try again."},
	},
	Otherwise: answer.Answer{Status: http.StatusInternalServerError, Class: "internal", Say: "Failed unexpectedly."},
}

func TestFor(t *testing.T) {
	for _, tt := range []struct {
		name     string
		err      error
		sentinel error
		status   int
		say      string
	}{
		{"a sentinel", errOther, errOther, 503, "Try again."},
		{"a sentinel wrapped with context", fmt.Errorf("call: %w", errOther), errOther, 503, "Try again."},
		{"the specific before the general it wraps", fmt.Errorf("%w: typeKey", errSpecific), errSpecific, 404, "Not found."},
		{"the general, with its detail", fmt.Errorf("%w: status 400", errGeneral), errGeneral, 502, "Refused: status 400."},
		{"a detail in brackets", fmt.Errorf("%w (HTTP 400)", errGeneral), errGeneral, 502, "Refused (HTTP 400)."},
		{"a detail-less general", errGeneral, errGeneral, 502, "Refused."},
		{"the first of several, outside in", fmt.Errorf("%w: %w", errOther, errGeneral), errOther, 503, "Try again."},
		{"a joined error", errors.Join(errUnknown, errGeneral), errGeneral, 502, "Refused."},
		{"no row: otherwise", errUnknown, nil, 500, "Failed unexpectedly."},
		{"nil: otherwise", nil, nil, 500, "Failed unexpectedly."},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a, say, sentinel := table.For(tt.err)
			if sentinel != tt.sentinel || a.Status != tt.status || say != tt.say {
				t.Errorf("For(%v) = %d %v %q, want %d %v %q", tt.err, a.Status, sentinel, say, tt.status, tt.sentinel, tt.say)
			}
		})
	}
}

func TestByKeyGivesBackWhatKeyNamed(t *testing.T) {
	for sentinel, want := range table.Rows {
		a, say := table.ByKey(answer.Key(sentinel))
		if a != want || say == "" || say[len(say)-1] != '.' {
			t.Errorf("ByKey(Key(%v)) = %+v %q, want %+v and a sentence", sentinel, a, say, want)
		}
	}
	if a, _ := table.ByKey("no such key"); a != table.Otherwise {
		t.Errorf("ByKey of an unknown key = %+v, want Otherwise", a)
	}
}

func TestMissing(t *testing.T) {
	if got := table.Missing(errGeneral, errUnknown, errOther); len(got) != 1 || got[0] != errUnknown {
		t.Errorf("Missing = %v, want [%v]", got, errUnknown)
	}
}

func ExampleTable_For() {
	notFound := errors.New("azdo: webhook not found")
	t := answer.Table{Rows: map[error]answer.Answer{
		notFound: {Status: http.StatusBadGateway, Class: "notfound", Say: "Azure DevOps cannot find this webhook.", Label: "Webhook not found"},
	}}
	a, say, _ := t.For(fmt.Errorf("deliver: %w", notFound))
	fmt.Println(a.Status, a.Class, a.Told(), say)
	// Output: 502 notfound true Azure DevOps cannot find this webhook.
}
