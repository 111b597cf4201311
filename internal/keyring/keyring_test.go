package keyring_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/rtstack/rtstack/internal/keyring"
)

func TestSealOpenAndRotate(t *testing.T) {
	oldSpec := keyring.NewSpec("k1")
	old, err := keyring.Parse(oldSpec)
	if err != nil {
		t.Fatal(err)
	}
	sealed := old.Seal("s3cret-value", "w1")
	if strings.Contains(sealed, "s3cret-value") || !keyring.IsSealed(sealed) || keyring.KeyID(sealed) != "k1" {
		t.Fatalf("sealed = %q", sealed)
	}
	if again := old.Seal("s3cret-value", "w1"); again == sealed {
		t.Error("two seals of one secret are equal: the nonce is not random")
	}
	// Rotation: a new first key seals, the old one still opens.
	rotated, err := keyring.Parse(keyring.NewSpec("k2") + "," + oldSpec)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := rotated.Open(sealed, "w1"); err != nil || got != "s3cret-value" {
		t.Fatalf("Open after rotation = %q, %v", got, err)
	}
	if id := keyring.KeyID(rotated.Seal("x", "w1")); id != "k2" {
		t.Errorf("rotated keyring seals with %q, want k2", id)
	}
	if _, err := rotated.Open(sealed, "w2"); !errors.Is(err, keyring.ErrCorrupt) {
		t.Errorf("Open with another context = %v, want ErrCorrupt", err)
	}
	fresh, _ := keyring.Parse(keyring.NewSpec("k2"))
	if _, err := fresh.Open(sealed, "w1"); !errors.Is(err, keyring.ErrUnknownKey) {
		t.Errorf("Open without the key = %v, want ErrUnknownKey", err)
	}
	tampered := sealed[:len(sealed)-2] + "AA"
	if _, err := old.Open(tampered, "w1"); !errors.Is(err, keyring.ErrCorrupt) {
		t.Errorf("Open of a tampered value = %v, want ErrCorrupt", err)
	}
}

func TestParseRefusesBadSpecs(t *testing.T) {
	good := keyring.NewSpec("a")
	for _, spec := range []string{"", "nokey", "a:notbase64!", "a:c2hvcnQ=", "bad id:" + strings.TrimPrefix(good, "a:"), good + "," + good} {
		if _, err := keyring.Parse(spec); err == nil {
			t.Errorf("Parse(%q) accepted", spec)
		} else if strings.Contains(err.Error(), strings.TrimPrefix(good, "a:")) {
			t.Errorf("error %q shows key bytes", err)
		}
	}
}
