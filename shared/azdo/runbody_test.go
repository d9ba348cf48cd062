package azdo_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/port-azure-relay/relay/shared/azdo"
)

func TestRunBody(t *testing.T) {
	const main = "refs/heads/main"
	tests := []struct {
		name   string
		port   string
		branch string
		want   string
	}{
		{"Port's context stays with the relay", `{"port_context":{"runId":"r_1"},"env":"prod"}`, "", `{}`},
		{"an empty body is an empty object", `{}`, "", `{}`},
		{"the branch is added when the body names none", `{"port_context":{}}`, main,
			`{"resources":{"repositories":{"self":{"refName":"refs/heads/main"}}}}`},
		{"strings are kept as they are, escapes, <, > and & included",
			`{"templateParameters":{"a":"<svc>&é","b":"\u00e9\n\"q\""}}`, "",
			`{"templateParameters":{"a":"<svc>&é","b":"\u00e9\n\"q\""}}`},
		{"numbers and booleans are sent as their JSON text",
			`{"templateParameters":{"n":1.50,"i":-3,"e":1e3,"t":true,"f":false}}`, "",
			`{"templateParameters":{"n":"1.50","i":"-3","e":"1e3","t":"true","f":"false"}}`},
		{"objects and arrays are sent as their compact JSON text",
			`{"templateParameters":{"o":{ "k" : [1, "<x>"] },"a":[ ]}}`, "",
			`{"templateParameters":{"o":"{\"k\":[1,\"<x>\"]}","a":"[]"}}`},
		{"a null parameter is left out, so that its default applies",
			`{"templateParameters":{"a":null,"b":"x"}}`, "", `{"templateParameters":{"b":"x"}}`},
		{"the order of the parameters is kept",
			`{"templateParameters":{"z":"1","a":"2","m":"3"}}`, "", `{"templateParameters":{"z":"1","a":"2","m":"3"}}`},
		{"plain variables become {value}",
			`{"variables":{"A":"x","B":2,"C":true,"D":null}}`, "",
			`{"variables":{"A":{"value":"x"},"B":{"value":"2"},"C":{"value":"true"}}}`},
		{"{value, isSecret} variables are kept, the value as a string",
			`{"variables":{"A":{"isSecret":true,"value":"x"},"B":{"value":3,"isSecret":false},"C":{"value":"y","isSecret":null}}}`, "",
			`{"variables":{"A":{"value":"x","isSecret":true},"B":{"value":"3","isSecret":false},"C":{"value":"y"}}}`},
		{"a body's refName wins over the branch",
			`{"resources":{"repositories":{"self":{"refName":"refs/heads/release","version":"abc"}}}}`, main,
			`{"resources":{"repositories":{"self":{"refName":"refs/heads/release","version":"abc"}}}}`},
		{"the branch fills a self repository without a refName",
			`{"resources":{"repositories":{"self":{"version":"abc"}}}}`, main,
			`{"resources":{"repositories":{"self":{"refName":"refs/heads/main","version":"abc"}}}}`},
		{"the branch is added beside other repositories",
			`{"resources":{"repositories":{"tools":{"refName":"refs/tags/v1"}}}}`, main,
			`{"resources":{"repositories":{"tools":{"refName":"refs/tags/v1"},"self":{"refName":"refs/heads/main"}}}}`},
		{"the branch is added before other kinds of resources",
			`{"resources":{"pipelines":{"up":{"version":"20261201.1"}}}}`, main,
			`{"resources":{"repositories":{"self":{"refName":"refs/heads/main"}},"pipelines":{"up":{"version":"20261201.1"}}}}`},
		{"repository fields are kept in Azure's order",
			`{"resources":{"repositories":{"r":{"version":"v","tokenType":"Basic","token":"t","refName":"refs/heads/x"}}}}`, "",
			`{"resources":{"repositories":{"r":{"refName":"refs/heads/x","token":"t","tokenType":"Basic","version":"v"}}}}`},
		{"each kind of resource is kept",
			`{"resources":{"builds":{"b":{"version":"1"}},"containers":{"c":{"version":"2"}},"packages":{"p":{"version":"3"}}}}`, "",
			`{"resources":{"builds":{"b":{"version":"1"}},"containers":{"c":{"version":"2"}},"packages":{"p":{"version":"3"}}}}`},
		{"an empty resources object is left out", `{"resources":{}}`, "", `{}`},
		{"stages to skip are kept", `{"stagesToSkip":["Smoke", "Perf"]}`, "", `{"stagesToSkip":["Smoke","Perf"]}`},
		{"preview and YAML override stay out", `{"previewRun":true,"yamlOverride":"steps: []"}`, "", `{}`},
		{"null keys are left out", `{"templateParameters":null,"variables":null,"resources":null,"stagesToSkip":null}`, "", `{}`},
		{"the keys come in a fixed order",
			`{"stagesToSkip":["S"],"resources":{"pipelines":{}},"variables":{"V":"1"},"templateParameters":{"p":"1"}}`, "",
			`{"templateParameters":{"p":"1"},"variables":{"V":{"value":"1"}},"resources":{"pipelines":{}},"stagesToSkip":["S"]}`},
		{"Port's older format keeps nothing", `{"action":"Create","resourceType":"run","context":{"runId":"r_1"},"payload":{"properties":{}}}`, "", `{}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := azdo.RunBody([]byte(tt.port), tt.branch)
			if err != nil {
				t.Fatalf("RunBody(%s, %q) = %v", tt.port, tt.branch, err)
			}
			if string(got) != tt.want {
				t.Errorf("RunBody(%s, %q) =\n%s\nwant\n%s", tt.port, tt.branch, got, tt.want)
			}
			again, err := azdo.RunBody(got, tt.branch)
			if err != nil || !bytes.Equal(again, got) {
				t.Errorf("RunBody of its own output = %s, %v; want it unchanged", again, err)
			}
		})
	}
}

func TestRunBodyRefusesShapesAzureDoesNotTake(t *testing.T) {
	const secret = "s3cr3t-value"
	tests := []struct {
		name   string
		port   string
		branch string
		wantIn string
	}{
		{"a body that is an array", `["` + secret + `"]`, "", "the body must be a JSON object"},
		{"a body that is a string", `"` + secret + `"`, "", "the body must be a JSON object"},
		{"a body that is not JSON", `{"templateParameters":{"a":"` + secret, "", "the body must be a JSON object"},
		{"trailing data", `{"templateParameters":{}} {"x":"` + secret + `"}`, "", "the body must be a JSON object"},
		{"a branch that is not a full ref", `{}`, "main", "the branch must be a full ref"},
		{"templateParameters as an array", `{"templateParameters":["` + secret + `"]}`, "", "templateParameters must be an object"},
		{"templateParameters as a string", `{"templateParameters":"env=` + secret + `"}`, "", "templateParameters must be an object"},
		{"templateParameters twice", `{"templateParameters":{"a":"` + secret + `"},"templateParameters":{}}`, "", "templateParameters appears twice"},
		{"templateParameters in another case", `{"TemplateParameters":{"a":"` + secret + `"}}`, "", "spell it templateParameters"},
		{"stagestoskip in another case", `{"stagestoskip":["` + secret + `"]}`, "", "spell it stagesToSkip"},
		{"parameter names that differ only in case", `{"templateParameters":{"env":"a","ENV":"` + secret + `"}}`, "", `templateParameters names "ENV" twice`},
		{"variables as an array", `{"variables":["` + secret + `"]}`, "", "variables must be an object"},
		{"a variable as an array", `{"variables":{"V":["` + secret + `"]}}`, "", `the variable "V" must be a string, a number, a boolean or {value, isSecret}`},
		{"a variable with another field", `{"variables":{"V":{"value":"x","note":"` + secret + `"}}}`, "", `the variable "V" takes only value and isSecret`},
		{"a variable with its value twice", `{"variables":{"V":{"value":"x","Value":"` + secret + `"}}}`, "", `the variable "V" takes only value and isSecret, once each`},
		{"a variable whose value is an object", `{"variables":{"V":{"value":{"x":"` + secret + `"}}}}`, "", `the variable "V" needs a value that is a string`},
		{"a variable without a value", `{"variables":{"V":{"isSecret":true}}}`, "", `the variable "V" needs a value`},
		{"a variable whose isSecret is a string", `{"variables":{"V":{"value":"x","isSecret":"` + secret + `"}}}`, "", `isSecret of the variable "V" must be true or false`},
		{"a variable with an odd name is not named", `{"variables":{"a b":[1]}}`, "", "a variable must be"},
		{"variable names that differ only in case", `{"variables":{"V":"1","v":"` + secret + `"}}`, "", `variables names "v" twice`},
		{"resources as an array", `{"resources":["` + secret + `"]}`, "", "resources must be an object"},
		{"an unknown kind of resource", `{"resources":{"repository":{"self":{"refName":"` + secret + `"}}}}`, "", "resources takes only repositories, pipelines"},
		{"repositories as an array", `{"resources":{"repositories":["` + secret + `"]}}`, "", "resources.repositories must be an object"},
		{"a repository as a string", `{"resources":{"repositories":{"self":"` + secret + `"}}}`, "", "each of resources.repositories must be an object of refName, token, tokenType, version"},
		{"a repository with an unknown field", `{"resources":{"repositories":{"self":{"ref":"` + secret + `"}}}}`, "", "takes only refName, token, tokenType, version"},
		{"a pipeline resource with a refName", `{"resources":{"pipelines":{"up":{"refName":"` + secret + `"}}}}`, "", "each of resources.pipelines takes only version"},
		{"a resource field that is a number", `{"resources":{"pipelines":{"up":{"version":1}}}}`, "", "resources.pipelines fields must be strings"},
		{"stagesToSkip as a string", `{"stagesToSkip":"` + secret + `"}`, "", "stagesToSkip must be an array of stage names"},
		{"stagesToSkip with a number", `{"stagesToSkip":["a",1]}`, "", "stagesToSkip must be an array of stage names"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := azdo.RunBody([]byte(tt.port), tt.branch)
			if !errors.Is(err, azdo.ErrRunBody) {
				t.Fatalf("RunBody(%s) = %s, %v; want %v", tt.port, got, err, azdo.ErrRunBody)
			}
			if !strings.Contains(err.Error(), tt.wantIn) {
				t.Errorf("RunBody(%s) = %q, want it to say %q", tt.port, err, tt.wantIn)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("RunBody(%s) = %q, which holds a value", tt.port, err)
			}
		})
	}
}

// runBodyShape is Azure's RunPipelineParameters as RunBody must write it: every
// template parameter a string, every variable a {value, isSecret}, nothing else.
type runBodyShape struct {
	TemplateParameters map[string]string `json:"templateParameters"`
	Variables          map[string]struct {
		Value    *string `json:"value"`
		IsSecret *bool   `json:"isSecret"`
	} `json:"variables"`
	Resources    map[string]map[string]map[string]string `json:"resources"`
	StagesToSkip []string                                `json:"stagesToSkip"`
}

func FuzzRunBody(f *testing.F) {
	for _, s := range []string{
		`{}`, `[]`, `null`, `"x"`, `{"port_context":{"runId":"r_1"}}`,
		`{"port_context":{"runId":"r_1","entity":"svc"},"templateParameters":{"env":"prod","replicas":3}}`,
		`{"templateParameters":{"a":"1","b":2,"c":true,"d":null,"e":{"x":[1,{"y":"z"}]},"f":[]}}`,
		`{"variables":{"A":"x","B":{"value":"y","isSecret":true},"C":{"value":1}}}`,
		`{"resources":{"repositories":{"self":{"refName":"refs/heads/x"},"r":{"token":"t"}},"pipelines":{"p":{"version":"1"}}}}`,
		`{"stagesToSkip":["a","b"],"previewRun":true,"yamlOverride":"x"}`,
		`{"templateParameters":{"A":"1","a":"2"}}`, `{"TemplateParameters":{}}`,
		`{"templateParameters":{"\u00e9":"\ud800","k":"<&>"}}`,
	} {
		f.Add([]byte(s), "")
		f.Add([]byte(s), "refs/heads/main")
	}
	const mark = "Zq9\u2603mark\u2603Zq9" // a value of a key other than the four
	f.Fuzz(func(t *testing.T, port []byte, branch string) {
		out, err := azdo.RunBody(port, branch)
		if err != nil {
			if !errors.Is(err, azdo.ErrRunBody) {
				t.Fatalf("RunBody = %v, not an ErrRunBody", err)
			}
			if out != nil {
				t.Fatalf("RunBody = %q with an error, want nil", out)
			}
		} else {
			checkRunBody(t, port, branch, out)
		}

		// The same body with another key holding a mark, first and last: the mark
		// must never reach the output or an error.
		trimmed := bytes.TrimSpace(port)
		if len(trimmed) < 2 || trimmed[0] != '{' || bytes.Contains(port, []byte("mark")) {
			return
		}
		inner := bytes.TrimSpace(trimmed[1:])
		sep := ","
		if len(inner) > 0 && inner[0] == '}' {
			sep = ""
		}
		marked := []byte(`{"port_context":{"runId":"` + mark + `","x":["` + mark + `"]}` + sep + string(inner))
		if i := bytes.LastIndexByte(marked, '}'); i > 0 && json.Valid(marked) {
			marked = append(marked[:i:i], []byte(`,"other":"`+mark+`"}`)...)
		}
		out, err = azdo.RunBody(marked, branch)
		if bytes.Contains(out, []byte("mark")) || (err != nil && strings.Contains(err.Error(), "mark")) {
			t.Fatalf("RunBody(%s) = %s, %v: a value of another key got through", marked, out, err)
		}
	})
}

// checkRunBody checks an output of RunBody.
func checkRunBody(t *testing.T, port []byte, branch string, out []byte) {
	t.Helper()
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(out, &keys); err != nil {
		t.Fatalf("RunBody(%q) = %q, not a JSON object: %v", port, out, err)
	}
	for k := range keys {
		switch k {
		case "templateParameters", "variables", "resources", "stagesToSkip":
		default:
			t.Fatalf("RunBody(%q) = %s, with the key %q", port, out, k)
		}
	}
	var shape runBodyShape
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&shape); err != nil {
		t.Fatalf("RunBody(%q) = %s, not Azure's shape: %v", port, out, err)
	}
	for name, v := range shape.Variables {
		if v.Value == nil {
			t.Fatalf("RunBody(%q) = %s: the variable %q has no value", port, out, name)
		}
	}
	if branch != "" && shape.Resources["repositories"] == nil {
		t.Fatalf("RunBody(%q, %q) = %s: no repositories for the branch", port, branch, out)
	}
	again, err := azdo.RunBody(out, branch)
	if err != nil || !bytes.Equal(again, out) {
		t.Fatalf("RunBody(%s) = %s, %v: want its own output back", out, again, err)
	}
	if twice, _ := azdo.RunBody(port, branch); !bytes.Equal(twice, out) {
		t.Fatalf("RunBody(%q) gave %s, then %s", port, out, twice)
	}
}

func TestRunBodyNeverSendsInvalidUTF8(t *testing.T) {
	port := []byte("{\"templateParameters\":{\"a\":\"x\xffy\"},\"stagesToSkip\":[\"\xfe\"],\"resources\":{\"pipelines\":{\"p\":{\"version\":\"\xc3\"}}}}")
	out, err := azdo.RunBody(port, "")
	if err != nil {
		t.Fatal(err)
	}
	if !utf8.Valid(out) {
		t.Errorf("RunBody = %q, not UTF-8", out)
	}
	if want := "{\"templateParameters\":{\"a\":\"x\uFFFDy\"},\"resources\":{\"pipelines\":{\"p\":{\"version\":\"\uFFFD\"}}},\"stagesToSkip\":[\"\uFFFD\"]}"; string(out) != want {
		t.Errorf("RunBody = %s, want %s", out, want)
	}
}
