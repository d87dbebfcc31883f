package engine

import "strconv"

// Kind is the type of a Value.
type Kind uint8

const (
	Null Kind = iota
	Str
	Int
)

// Value is a script value: a pseudo-variable's content or a function result that may be null.
type Value struct {
	Kind Kind
	S    string
	I    int64
}

// StrVal and IntVal make values.
func StrVal(s string) Value { return Value{Kind: Str, S: s} }
func IntVal(i int64) Value  { return Value{Kind: Int, I: i} }

// String renders the value as Kamailio prints it ("<null>" for null).
func (v Value) String() string {
	switch v.Kind {
	case Str:
		return v.S
	case Int:
		return strconv.FormatInt(v.I, 10)
	}
	return "<null>"
}
