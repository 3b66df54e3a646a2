package policy

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/loader"
)

// Problem is one error found in a policy file while loading or compiling it.
type Problem struct {
	// File is the file at fault, when known.
	File string `json:"file,omitempty"`
	// Line is the 1-based line at fault, or 0 when unknown.
	Line int `json:"line,omitempty"`
	// Message says what is wrong.
	Message string `json:"message"`
}

// String formats the problem as `file:line: message`, the way compilers do.
func (p Problem) String() string {
	switch {
	case p.File != "" && p.Line > 0:
		return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Message)
	case p.File != "":
		return p.File + ": " + p.Message
	default:
		return p.Message
	}
}

// dataError matches the loader's errors on data files: `path: error converting YAML to JSON: yaml: line 3: …`
// or `path: …`.
var dataError = regexp.MustCompile(`^(\S+\.(?:json|yaml|yml|rego)): (?:error converting YAML to JSON: )?(?:yaml: line (\d+): )?(.*)$`)

// Problems splits a Load or FromBundle error into one Problem per error OPA reported, each with its file and
// line when OPA knows them.
func Problems(err error) []Problem {
	if err == nil {
		return nil
	}
	var out []Problem
	var walk func(error)
	walk = func(err error) {
		var (
			astErrs ast.Errors
			astErr  *ast.Error
			ldErrs  loader.Errors
		)
		switch {
		case errors.As(err, &ldErrs):
			for _, e := range ldErrs {
				walk(e)
			}
		case errors.As(err, &astErrs):
			for _, e := range astErrs {
				walk(e)
			}
		case errors.As(err, &astErr):
			p := Problem{Message: astErr.Code + ": " + astErr.Message}
			if astErr.Location != nil {
				p.File, p.Line = astErr.Location.File, astErr.Location.Row
			}
			out = append(out, p)
		default:
			msg := err.Error()
			if m := dataError.FindStringSubmatch(msg); m != nil {
				line, _ := strconv.Atoi(m[2])
				out = append(out, Problem{File: m[1], Line: line, Message: m[3]})
				return
			}
			out = append(out, Problem{Message: msg})
		}
	}
	walk(err)
	return out
}
