// Package answer turns an error into what a function says of it: the HTTP status, the
// class that its metrics and log line name, the sentence the caller reads and, for an
// answer told to a Port run, the run's status label. Each function's core keeps one
// Table, keyed by the sentinel errors of the packages that own them.
package answer

import "strings"

// An Answer is what one sentinel error becomes.
type Answer struct {
	Status int    // the HTTP status, one of net/http's constants
	Class  string // the metric's and the log line's reason or cause: a short fixed word
	Say    string // the caller's sentence; with Detail, the error's own words follow it
	Detail bool   // the error adds words of its own (never input or upstream text)
	Label  string // the Port run's status label, when the answer is told to a run; "" when it never is
}

// Told reports whether the answer is told to the Port run the request names.
func (a Answer) Told() bool { return a.Label != "" }

// Table is a function's answers by sentinel. An error that wraps several sentinels
// gets the answer of the first one the table has, walking the error's chain from the
// outside in, as errors.Is does: a package wraps the specific error around the general.
type Table struct {
	Rows      map[error]Answer
	Otherwise Answer // for an error no row names: a 500
}

// For returns the answer to err, the caller's sentence (the answer's Say, followed by
// the error's own words after the sentinel's when the answer takes Detail), and the
// sentinel it matched (nil for Otherwise).
func (t Table) For(err error) (a Answer, say string, sentinel error) {
	sentinel = t.find(err)
	if sentinel == nil {
		return t.Otherwise, t.Otherwise.Say, nil
	}
	a = t.Rows[sentinel]
	return a, a.sentence(err, sentinel), sentinel
}

// Key names sentinel for storage: its text, which holds no input.
func Key(sentinel error) string {
	if sentinel == nil {
		return ""
	}
	return sentinel.Error()
}

// ByKey returns the answer whose sentinel Key names, with its sentence (the detail of
// the error it answered is not kept), or Otherwise.
func (t Table) ByKey(key string) (Answer, string) {
	for sentinel, a := range t.Rows {
		if sentinel.Error() == key {
			if a.Detail {
				return a, a.Say + "."
			}
			return a, a.Say
		}
	}
	return t.Otherwise, t.Otherwise.Say
}

// find walks err's chain depth first, outside in, for a sentinel of t.
func (t Table) find(err error) error {
	for err != nil {
		if _, ok := t.Rows[err]; ok {
			return err
		}
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			err = u.Unwrap()
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				if s := t.find(e); s != nil {
					return s
				}
			}
			return nil
		default:
			return nil
		}
	}
	return nil
}

// sentence is Say, and with Detail what err adds to its sentinel's own words.
func (a Answer) sentence(err, sentinel error) string {
	if !a.Detail {
		return a.Say
	}
	_, detail, _ := strings.Cut(err.Error(), sentinel.Error())
	detail = strings.TrimLeft(detail, ": ")
	switch {
	case detail == "":
		return a.Say + "."
	case strings.HasPrefix(detail, "("):
		return a.Say + " " + detail + "."
	default:
		return a.Say + ": " + detail + "."
	}
}

// Missing returns those of errs that have no row in t, for a test that every sentinel
// a package exports is answered.
func (t Table) Missing(errs ...error) []error {
	var missing []error
	for _, err := range errs {
		if _, ok := t.Rows[err]; !ok {
			missing = append(missing, err)
		}
	}
	return missing
}
