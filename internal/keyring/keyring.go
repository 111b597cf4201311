package keyring

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// KeySize is the length of every key: AES-256.
const KeySize = 32

// Prefix starts every sealed value: "rtsk1:KEY_ID:BASE64(nonce|ciphertext)".
// A string without it was written before secrets were sealed. It equals
// events.SealedSecretPrefix (a test checks), which this package does not
// import.
const Prefix = "rtsk1:"

// Errors a caller branches on.
var (
	// ErrUnknownKey: a sealed value names a key id the keyring lacks (the
	// key was removed too early, or the value was sealed elsewhere).
	ErrUnknownKey = errors.New("sealed with a key this keyring does not hold")
	// ErrCorrupt: a sealed value is malformed, was altered, or is opened
	// with another context than it was sealed with.
	ErrCorrupt = errors.New("sealed value is corrupt or belongs elsewhere")
)

var keyID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)

type key struct {
	id   string
	aead cipher.AEAD
}

// Keyring seals and opens secrets. It is safe for concurrent use.
type Keyring struct {
	keys []key // keys[0] seals
}

// Parse reads a keyring spec: "id1:BASE64KEY,id2:BASE64KEY", each key
// KeySize bytes in standard base64, ids of 1–32 letters, digits, '_' or
// '-', distinct. The first key seals; all open.
func Parse(spec string) (*Keyring, error) {
	var kr Keyring
	var errs []error
	for i, part := range strings.Split(spec, ",") {
		part = strings.TrimSpace(part)
		id, b64, ok := strings.Cut(part, ":")
		if !ok || !keyID.MatchString(id) {
			errs = append(errs, fmt.Errorf("key %d: want ID:BASE64KEY with an id of letters, digits, '_' or '-'", i+1))
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || len(raw) != KeySize {
			errs = append(errs, fmt.Errorf("key %q: want %d bytes in standard base64", id, KeySize))
			continue
		}
		if kr.find(id) != nil {
			errs = append(errs, fmt.Errorf("key %q appears twice", id))
			continue
		}
		block, err := aes.NewCipher(raw)
		if err != nil {
			errs = append(errs, fmt.Errorf("key %q: %w", id, err))
			continue
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			errs = append(errs, fmt.Errorf("key %q: %w", id, err))
			continue
		}
		kr.keys = append(kr.keys, key{id: id, aead: aead})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("keyring: %w", err) // never the key bytes
	}
	return &kr, nil
}

// NewSpec returns the spec of a keyring of one fresh random key named id.
func NewSpec(id string) string {
	raw := make([]byte, KeySize)
	_, _ = rand.Read(raw) // crypto/rand.Read never fails (Go 1.24+)
	return id + ":" + base64.StdEncoding.EncodeToString(raw)
}

func (kr *Keyring) find(id string) *key {
	for i := range kr.keys {
		if kr.keys[i].id == id {
			return &kr.keys[i]
		}
	}
	return nil
}

// SealingKeyID is the id of the key Seal uses.
func (kr *Keyring) SealingKeyID() string { return kr.keys[0].id }

// Seal encrypts plaintext with the first key (AES-256-GCM, a random
// nonce), bound to context: Open must be given the same context (a webhook
// seals with its id, so a sealed secret cannot be moved to another one).
func (kr *Keyring) Seal(plaintext, context string) string {
	k := kr.keys[0]
	nonce := make([]byte, k.aead.NonceSize(), k.aead.NonceSize()+len(plaintext)+k.aead.Overhead())
	_, _ = rand.Read(nonce)
	out := k.aead.Seal(nonce, nonce, []byte(plaintext), []byte(context))
	return Prefix + k.id + ":" + base64.RawStdEncoding.EncodeToString(out)
}

// IsSealed reports whether s looks like a value Seal made.
func IsSealed(s string) bool { return strings.HasPrefix(s, Prefix) }

// KeyID returns the id of the key that sealed s, "" when s is not sealed.
func KeyID(s string) string {
	rest, ok := strings.CutPrefix(s, Prefix)
	if !ok {
		return ""
	}
	id, _, _ := strings.Cut(rest, ":")
	return id
}

// Open decrypts a value Seal made with the same context. It fails with
// ErrUnknownKey or ErrCorrupt; the error never holds the plaintext.
func (kr *Keyring) Open(sealed, context string) (string, error) {
	rest, ok := strings.CutPrefix(sealed, Prefix)
	if !ok {
		return "", fmt.Errorf("%w: no %q prefix", ErrCorrupt, Prefix)
	}
	id, b64, ok := strings.Cut(rest, ":")
	if !ok {
		return "", fmt.Errorf("%w: no key id", ErrCorrupt)
	}
	k := kr.find(id)
	if k == nil {
		return "", fmt.Errorf("%w: key id %q", ErrUnknownKey, id)
	}
	raw, err := base64.RawStdEncoding.DecodeString(b64)
	if err != nil || len(raw) < k.aead.NonceSize()+k.aead.Overhead() {
		return "", fmt.Errorf("%w: bad encoding", ErrCorrupt)
	}
	n := k.aead.NonceSize()
	plain, err := k.aead.Open(nil, raw[:n], raw[n:], []byte(context))
	if err != nil {
		return "", fmt.Errorf("%w: key %q does not authenticate it", ErrCorrupt, id)
	}
	return string(plain), nil
}
