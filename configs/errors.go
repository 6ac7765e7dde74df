package configs

import "errors"

// ErrInvalidSettings is wrapped by the errors of [Load] and
// [Settings.Validate] for settings that are wrong: an unknown key in the
// config file, a value out of range, auth settings that conflict. The error
// names every key at fault and its value (secrets left out).
var ErrInvalidSettings = errors.New("sluice: invalid settings")
