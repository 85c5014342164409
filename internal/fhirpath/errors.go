package fhirpath

import "fmt"

// SyntaxError reports an expression that is not valid FHIRPath. Pos is the
// byte offset in the expression where the problem was found.
type SyntaxError struct {
	Expr string
	Pos  int
	Msg  string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("fhirpath: syntax error at offset %d: %s", e.Pos, e.Msg)
}

// UnsupportedError reports valid FHIRPath that this subset does not
// implement, such as an arithmetic operator or an unknown function. Pos is
// the byte offset of the construct.
type UnsupportedError struct {
	Expr    string
	Pos     int
	Feature string
}

func (e *UnsupportedError) Error() string {
	return fmt.Sprintf("fhirpath: unsupported at offset %d: %s", e.Pos, e.Feature)
}

// EvalError reports an evaluation that the FHIRPath specification defines
// as an error, for example "is" applied to more than one item. Pos is the
// byte offset of the failing operation in the expression.
type EvalError struct {
	Pos int
	Msg string
}

func (e *EvalError) Error() string {
	return fmt.Sprintf("fhirpath: evaluation error at offset %d: %s", e.Pos, e.Msg)
}
