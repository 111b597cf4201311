package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/rtstack/rtstack/internal/keyring"
)

// devKeyFile is where `rtstack dev` keeps its generated WEBHOOK_SECRET_KEY,
// inside DATA_DIR beside the log whose secrets it seals.
const devKeyFile = "webhook-secret.key"

// keyring returns the keyring of WEBHOOK_SECRET_KEY. Under `rtstack dev`
// without it, the key in DATA_DIR/webhook-secret.key is used, made (0600)
// on first start; outside dev it is required, so a process that seals or
// opens webhook secrets refuses to start without it.
func (p *parts) keyring() (*keyring.Keyring, error) {
	if p.kr != nil {
		return p.kr, nil
	}
	spec := strings.TrimSpace(p.cfg.WebhookSecretKey)
	if spec == "" && !p.cfg.dev {
		return nil, errors.New("WEBHOOK_SECRET_KEY is required: it seals webhook secrets before they enter the log " +
			"(format ID:BASE64KEY[,ID:BASE64KEY…], 32-byte keys; see docs/security.md)")
	}
	if spec == "" {
		var err error
		if spec, err = devKey(p.cfg.DataDir); err != nil {
			return nil, err
		}
	}
	kr, err := keyring.Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("WEBHOOK_SECRET_KEY: %w", err)
	}
	p.kr = kr
	return kr, nil
}

// devKey reads the dev key of dataDir, making it on first use.
func devKey(dataDir string) (string, error) {
	path := filepath.Join(dataDir, devKeyFile)
	b, err := os.ReadFile(path) //nolint:gosec // G304: the path is DATA_DIR's own key file
	if err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("dev webhook key: %w", err)
	}
	if err := os.MkdirAll(dataDir, 0o750); err != nil {
		return "", fmt.Errorf("dev webhook key: %w", err)
	}
	spec := keyring.NewSpec("dev1")
	// O_EXCL: two dev processes starting at once agree on the first key.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600) //nolint:gosec // G304: as above
	if errors.Is(err, fs.ErrExist) {
		return devKey(dataDir)
	}
	if err != nil {
		return "", fmt.Errorf("dev webhook key: %w", err)
	}
	if _, err := f.WriteString(spec + "\n"); err != nil {
		_ = f.Close()
		return "", fmt.Errorf("dev webhook key: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("dev webhook key: %w", err)
	}
	return spec, nil
}
