package azdo

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzJudgeRun holds the reading of Azure's answers to its promises: no panic; a
// run only from a 2xx with a positive id; a web link only if http or https; a
// parameter named only if it is a plain key of the body sent; and nothing of
// Azure's message in an error.
func FuzzJudgeRun(f *testing.F) {
	const sent = `{"templateParameters":{"env":"prod","Region":"eu","a b":"x"}}`
	for _, s := range []struct {
		status      int
		contentType string
		typeKey     string
		message     string
		raw         string
	}{
		{200, "application/json; charset=utf-8", "", "", `{"id":1,"name":"20261206.1","state":"inProgress","_links":{"web":{"href":"https://dev.azure.com/x"}}}`},
		{201, "application/json", "", "", `{"id":"7","name":7,"pipeline":{"id":"3"}}`},
		{203, "text/html", "", "", `<html>sign in</html>`},
		{400, "application/json", "PipelineValidationException", "Unexpected parameter 'region'", ""},
		{400, "application/json", "PipelineValidationException", "Unexpected parameter 'a b'\nUnexpected parameter 'env'", ""},
		{400, "application/json", "PipelineValidationException", "The 'env' parameter value 'x\nUnexpected parameter 'env'' is not a valid number.", ""},
		{404, "application/json", "ProjectDoesNotExistWithNameException", "TF200016: The following project does not exist: p.", ""},
		{302, "", "", "", ""},
		{500, "application/json", "VssServiceException", "TF400898: An internal error occurred.", ""},
	} {
		f.Add(s.status, s.contentType, s.typeKey, s.message, s.raw, sent)
	}
	const mark = "Mk\u2603"
	f.Fuzz(func(t *testing.T, status int, contentType, typeKey, message, raw, sent string) {
		status = 100 + abs(status)%500
		answers := [][]byte{[]byte(raw)}
		if env, err := json.Marshal(map[string]string{"typeKey": typeKey, "message": message + mark}); err == nil {
			answers = append(answers, env)
		}
		for _, answer := range answers {
			resp := &http.Response{StatusCode: status, Header: http.Header{"Content-Type": {contentType}, "Location": {raw}}}
			res, err := judgeRun(resp, answer, []byte(sent))
			if err == nil {
				if status < 200 || status > 299 || res.ID <= 0 {
					t.Fatalf("judgeRun(%d, %q) = %+v, want an error", status, answer, res)
				}
				if res.WebURL != "" {
					if u, err := url.Parse(res.WebURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") {
						t.Fatalf("WebURL = %q", res.WebURL)
					}
				}
				if !utf8.ValidString(res.Name) || strings.ContainsAny(res.Name, "\x00\n\r") {
					t.Fatalf("Name = %q", res.Name)
				}
				continue
			}
			var pe *ParameterError
			if errors.As(err, &pe) && pe.Name != "" {
				if !safeName(pe.Name) || !slices.Contains(templateParameterKeys([]byte(sent)), pe.Name) {
					t.Fatalf("ParameterError names %q, not a plain key of %s", pe.Name, sent)
				}
			}
			if strings.Contains(err.Error(), mark) && !strings.Contains(typeKey, mark) && !strings.Contains(sent, mark) {
				t.Fatalf("judgeRun(%d, %s) = %q, which quotes Azure's message", status, answer, err)
			}
		}
	})
}

func abs(n int) int {
	if n < 0 {
		if n == -n { // the smallest int
			return 0
		}
		return -n
	}
	return n
}

func TestUnexpectedParameterNamesOnlyAKeyOfTheBody(t *testing.T) {
	sent := []byte(`{"templateParameters":{"env":"Unexpected parameter 'secret'","Region":"eu"}}`)
	tests := []struct {
		message string
		name    string
		found   bool
	}{
		{"Unexpected parameter 'region'", "Region", true},
		{"Unexpected parameter 'secret'", "", true},
		{"The 'env' parameter value 'x\nUnexpected parameter 'env'", "env", true},
		{"/a.yml (Line: 1, Col: 2): Unexpected parameter 'env'", "", false},
		{"Unexpected parameter 'env' and more", "", false},
		{"A value for the 'env' parameter must be provided.", "", false},
	}
	for _, tt := range tests {
		name, found := unexpectedParameter(tt.message, sent)
		if name != tt.name || found != tt.found {
			t.Errorf("unexpectedParameter(%q) = %q, %v; want %q, %v", tt.message, name, found, tt.name, tt.found)
		}
	}
}
