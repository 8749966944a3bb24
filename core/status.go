package core

import (
	"errors"
	"fmt"
	"unicode"
	"unicode/utf8"
)

// Status is a kvh_status value. The numeric values are identical to the
// header's enum and never change.
type Status int32

// Status values (kvh_status in include/kvhygiene.h).
const (
	StatusOK             Status = 0
	StatusInvalidArg     Status = 1
	StatusNullArg        Status = 2
	StatusStructSize     Status = 3
	StatusInvalidID      Status = 4
	StatusUnknownHandle  Status = 5
	StatusFreed          Status = 6
	StatusState          Status = 7
	StatusCoverage       Status = 8
	StatusQuarantined    Status = 9
	StatusIsolation      Status = 10
	StatusPolicy         Status = 11
	StatusVerify         Status = 12
	StatusPending        Status = 13
	StatusUnsupported    Status = 14
	StatusDevice         Status = 15
	StatusNoMem          Status = 16
	StatusIO             Status = 17
	StatusLog            Status = 18
	StatusBufferTooSmall Status = 19
	StatusClosed         Status = 20
	StatusForked         Status = 21
	StatusPoisoned       Status = 22
	StatusInternal       Status = 23
	StatusConfig         Status = 24
	StatusBusy           Status = 25
)

var statusNames = [...]string{
	"KVH_OK", "KVH_E_INVALID_ARG", "KVH_E_NULL_ARG", "KVH_E_STRUCT_SIZE", "KVH_E_INVALID_ID",
	"KVH_E_UNKNOWN_HANDLE", "KVH_E_FREED", "KVH_E_STATE", "KVH_E_COVERAGE", "KVH_E_QUARANTINED",
	"KVH_E_ISOLATION", "KVH_E_POLICY", "KVH_E_VERIFY", "KVH_E_PENDING", "KVH_E_UNSUPPORTED",
	"KVH_E_DEVICE", "KVH_E_NOMEM", "KVH_E_IO", "KVH_E_LOG", "KVH_E_BUFFER_TOO_SMALL",
	"KVH_E_CLOSED", "KVH_E_FORKED", "KVH_E_POISONED", "KVH_E_INTERNAL", "KVH_E_CONFIG",
	"KVH_E_BUSY",
}

// String returns the header name of the status ("KVH_E_FREED"), or
// "KVH_E_UNKNOWN" for a value the header does not define.
func (s Status) String() string {
	if s >= 0 && int(s) < len(statusNames) {
		return statusNames[s]
	}
	return "KVH_E_UNKNOWN"
}

// Error is the error type every core function returns: a status for the C
// ABI and a message for kvh_last_error.
type Error struct {
	Code Status
	Msg  string
}

// Error returns the message.
func (e *Error) Error() string { return e.Msg }

// StatusOf maps an error to its status: StatusOK for nil, the Code of a
// wrapped *Error, else StatusInternal.
func StatusOf(err error) Status {
	if err == nil {
		return StatusOK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return StatusInternal
}

func errorf(code Status, format string, args ...any) error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// MaxIDLen is KVH_MAX_ID_LEN: the longest identifier in bytes.
const MaxIDLen = 256

// ValidateID checks an identifier (tenant, request, model, reason, ...):
// non-empty, valid UTF-8, at most MaxIDLen bytes, no control characters
// (C0, DEL, C1) and no '"'. what names the argument in the message. The
// error has StatusInvalidID.
func ValidateID(what, s string) error {
	if s == "" {
		return errorf(StatusInvalidID, "%s is empty", what)
	}
	if len(s) > MaxIDLen {
		return errorf(StatusInvalidID, "%s is %d bytes, longer than %d", what, len(s), MaxIDLen)
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == 0x7f {
				return errorf(StatusInvalidID, "%s contains control character 0x%02x at byte %d", what, c, i)
			}
			if c == '"' {
				return errorf(StatusInvalidID, "%s contains '\"' at byte %d", what, i)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n <= 1 {
			return errorf(StatusInvalidID, "%s is not valid UTF-8 at byte %d", what, i)
		}
		if unicode.IsControl(r) {
			return errorf(StatusInvalidID, "%s contains control character U+%04X at byte %d", what, r, i)
		}
		i += n
	}
	return nil
}

// validateOptID validates an optional identifier ("" is allowed).
func validateOptID(what, s string) error {
	if s == "" {
		return nil
	}
	return ValidateID(what, s)
}
