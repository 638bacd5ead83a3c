// Package badinput marks errors caused by what the user gave (a flag, a
// file, a value), which the programs report with exit status 2 and the
// one-line reason, as opposed to failures of the run itself.
package badinput

import (
	"errors"
	"fmt"
)

// Error is an error in the user's input.
type Error struct{ Err error }

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Errorf makes an Error; its message should name the flag or field, the
// value and the fix.
func Errorf(format string, args ...any) error {
	return &Error{fmt.Errorf(format, args...)}
}

// Wrap marks err as bad input; nil stays nil.
func Wrap(err error) error {
	if err == nil {
		return nil
	}
	return &Error{err}
}

// Is says whether err, or an error it wraps, is bad input.
func Is(err error) bool {
	var e *Error
	return errors.As(err, &e)
}
