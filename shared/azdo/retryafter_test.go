package azdo

import (
	"net/http"
	"testing"
	"time"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	date := func(d time.Duration) string { return now.Add(d).Format(http.TimeFormat) }
	tests := []struct {
		name  string
		value string
		want  time.Duration
	}{
		{"no header is no wait", "", 0},
		{"seconds are read", "1", time.Second},
		{"seconds with spaces are read", " 7 ", 7 * time.Second},
		{"zero seconds is no wait", "0", 0},
		{"a minute is kept", "60", time.Minute},
		{"an hour is kept: a queued delivery waits it out", "3600", time.Hour},
		{"seconds over 12 hours are capped at 12 hours, SQS's longest invisibility", "50000", 12 * time.Hour},
		{"seconds too many for a Duration are capped at 12 hours", "10000000000", 12 * time.Hour},
		{"seconds beyond an int are no wait", "99999999999999999999999", 0},
		{"negative seconds are no wait", "-5", 0},
		{"a large negative number of seconds is no wait", "-10000000000", 0},
		{"fractional seconds are no wait", "1.5", 0},
		{"garbage is no wait", "soon", 0},
		{"an HTTP date is the time until it", date(30 * time.Second), 30 * time.Second},
		{"an HTTP date in the past is no wait", date(-30 * time.Second), 0},
		{"an HTTP date an hour ahead is an hour", date(time.Hour), time.Hour},
		{"an HTTP date a day ahead is capped at 12 hours", date(24 * time.Hour), 12 * time.Hour},
		{"an RFC 850 date is read", now.Add(10 * time.Second).Format("Monday, 02-Jan-06 15:04:05 GMT"), 10 * time.Second},
		{"an ISO date is no wait", now.Add(10 * time.Second).Format(time.RFC3339), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseRetryAfter(tt.value, now); got != tt.want {
				t.Errorf("parseRetryAfter(%q) = %v, want %v", tt.value, got, tt.want)
			}
		})
	}
}
