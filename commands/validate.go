package commands

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/rtstack/rtstack/internal/egress"
)

// Limits on what may reach the log.
const (
	MaxTextBytes     = 4096
	MaxRoomBytes     = 64
	MaxUserBytes     = 64
	MaxClientIDBytes = 128
	MaxEmojiBytes    = 32
	MaxSecretBytes   = 256
	MaxMentions      = 20
)

// Validation errors; callers map them to client-facing codes. Each is
// wrapped with the detail, so errors.Is works and Error() reads well.
var (
	ErrInvalid     = errors.New("invalid command")   // a field is missing or malformed
	ErrTextTooLong = errors.New("text too long")     // text over MaxTextBytes
	ErrBadUTF8     = errors.New("invalid UTF-8")     // a string field is not UTF-8
	ErrBadRoom     = errors.New("invalid room name") // empty, too long or bad characters
	// ErrBadURL is egress.ErrBadURL (not http(s), too long, or private),
	// named here so callers of the handler branch on commands' errors alone.
	ErrBadURL = egress.ErrBadURL
)

var roomName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// ValidateRoom checks a room name: 1–64 bytes of letters, digits, '.', '_'
// and '-', starting with a letter or digit.
func ValidateRoom(room string) error {
	switch {
	case room == "":
		return fmt.Errorf("%w: empty", ErrBadRoom)
	case len(room) > MaxRoomBytes:
		return fmt.Errorf("%w: %d bytes, at most %d", ErrBadRoom, len(room), MaxRoomBytes)
	case !roomName.MatchString(room):
		return fmt.Errorf("%w: %q: use letters, digits, '.', '_' and '-'", ErrBadRoom, room)
	}
	return nil
}

func validateUser(user string) error {
	switch {
	case user == "":
		return fmt.Errorf("%w: no user", ErrInvalid)
	case len(user) > MaxUserBytes:
		return fmt.Errorf("%w: user id over %d bytes", ErrInvalid, MaxUserBytes)
	case !utf8.ValidString(user):
		return fmt.Errorf("%w: user id", ErrBadUTF8)
	}
	return nil
}

// validateText checks a message body: non-empty, UTF-8, at most
// MaxTextBytes.
func validateText(text string) error {
	switch {
	case !utf8.ValidString(text):
		return fmt.Errorf("%w: text", ErrBadUTF8)
	case strings.TrimSpace(text) == "":
		return fmt.Errorf("%w: empty text", ErrInvalid)
	case len(text) > MaxTextBytes:
		return fmt.Errorf("%w: %d bytes, at most %d", ErrTextTooLong, len(text), MaxTextBytes)
	}
	return nil
}

func validateField(name, v string, max int) error {
	switch {
	case v == "":
		return fmt.Errorf("%w: no %s", ErrInvalid, name)
	case len(v) > max:
		return fmt.Errorf("%w: %s over %d bytes", ErrInvalid, name, max)
	case !utf8.ValidString(v):
		return fmt.Errorf("%w: %s", ErrBadUTF8, name)
	}
	return nil
}

func validateRoomUser(room, user string) error {
	return errors.Join(ValidateRoom(room), validateUser(user))
}

func (c SendMessage) validate() error {
	errs := []error{validateRoomUser(c.Room, c.User), validateText(c.Text)}
	if len(c.ClientID) > MaxClientIDBytes || !utf8.ValidString(c.ClientID) {
		errs = append(errs, fmt.Errorf("%w: client_id must be UTF-8 of at most %d bytes", ErrInvalid, MaxClientIDBytes))
	}
	return errors.Join(errs...)
}

func (c EditMessage) validate() error {
	return errors.Join(validateRoomUser(c.Room, c.User), validateField("message_id", c.MessageID, 128), validateText(c.Text))
}

func (c DeleteMessage) validate() error {
	return errors.Join(validateRoomUser(c.Room, c.User), validateField("message_id", c.MessageID, 128))
}

func (c React) validate() error {
	return errors.Join(validateRoomUser(c.Room, c.User), validateField("message_id", c.MessageID, 128), validateField("emoji", c.Emoji, MaxEmojiBytes))
}

func (c RegisterWebhook) validate(allowPrivate bool) error {
	errs := []error{validateRoomUser(c.Room, c.User), egress.ValidateURL(c.URL, allowPrivate)}
	if len(c.Secret) > MaxSecretBytes || !utf8.ValidString(c.Secret) {
		errs = append(errs, fmt.Errorf("%w: secret must be UTF-8 of at most %d bytes", ErrInvalid, MaxSecretBytes))
	}
	return errors.Join(errs...)
}
