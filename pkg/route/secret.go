package route

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// Secret is key material read from the environment or a file. It prints
// as [redacted] whatever the verb (%v, %+v, %#v, %s, %x, %d ...), in JSON
// and in slog, so a Config can be logged or dumped without leaking it.
// It converts to []byte where one is needed: hmac.New(sha256.New, s).
type Secret []byte

const (
	redacted  = "[redacted]"
	notLoaded = "[not loaded]"
)

// String returns [redacted], or [not loaded] when the secret is empty
// (lint mode, ParseOptions.SkipSecrets).
func (s Secret) String() string {
	if len(s) == 0 {
		return notLoaded
	}
	return redacted
}

// Format prints String for every verb, so no verb shows the bytes.
func (s Secret) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, s.String()) }

// GoString is for %#v, which Format already covers; it keeps the
// redaction for code that calls GoString directly.
func (s Secret) GoString() string { return s.String() }

// MarshalJSON writes the redacted form, never the bytes.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + s.String() + `"`), nil }

// MarshalText writes the redacted form, never the bytes.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// LogValue logs the redacted form.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// Webhook is where a webhook destination POSTs alerts: JSON signed with
// HMAC-SHA256 under Secret.
type Webhook struct {
	// URL is an absolute http or https URL without user information.
	URL string
	// Secret is the HMAC-SHA256 key, read at load from the environment
	// variable SecretEnv or the file SecretFile. Empty when the file was
	// loaded with ParseOptions.SkipSecrets.
	Secret Secret
	// SecretEnv and SecretFile say where the key comes from; one is set.
	// SecretFile is as resolved (relative to the routes file).
	SecretEnv, SecretFile string
	// Timeout bounds one POST.
	Timeout time.Duration
}

// String describes the webhook without its key, and without the query of
// its URL, which some receivers use for tokens.
func (w Webhook) String() string {
	return fmt.Sprintf("webhook %s (HMAC key %s from %s, timeout %s)", safeURL(w.URL), w.Secret, w.secretSource(), fmtDuration(w.Timeout))
}

// LogValue logs the webhook without its key.
func (w Webhook) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("url", safeURL(w.URL)),
		slog.String("secret", w.Secret.String()),
		slog.String("secret_from", w.secretSource()),
		slog.Duration("timeout", w.Timeout),
	)
}

func (w Webhook) secretSource() string {
	switch {
	case w.SecretEnv != "":
		return "$" + w.SecretEnv
	case w.SecretFile != "":
		return w.SecretFile
	}
	return "nowhere"
}

// safeURL drops the query and fragment of a URL for display.
func safeURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(invalid URL)"
	}
	u.User = nil
	if u.RawQuery != "" {
		u.RawQuery = "…"
	}
	u.Fragment = ""
	return u.String()
}

// Limits on webhook keys.
const (
	// minSecretLen is the shortest HMAC key accepted: a shorter one could
	// be found by trying keys.
	minSecretLen = 16
	// maxSecretFileSize bounds a secret file.
	maxSecretFileSize = 64 << 10
)

// envNameOK accepts the conventional names of environment variables:
// upper-case letters, digits and _, not starting with a digit. The rule
// keeps a secret pasted in place of a name from being echoed in errors.
func envNameOK(s string) bool {
	if s == "" || len(s) > 128 || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// readSecretFile reads a key file: a regular file (symbolic links, as
// Kubernetes mounts secrets, are followed) of at most maxSecretFileSize
// bytes, with trailing line ends removed. Errors never hold the content.
func readSecretFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, osReason(err)
	}
	if !fi.Mode().IsRegular() {
		return nil, errors.New("not a regular file")
	}
	if fi.Size() > maxSecretFileSize {
		return nil, fmt.Errorf("larger than the %d bytes allowed", maxSecretFileSize)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, osReason(err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxSecretFileSize+1))
	if err != nil {
		return nil, osReason(err)
	}
	if len(data) > maxSecretFileSize {
		return nil, fmt.Errorf("larger than the %d bytes allowed", maxSecretFileSize)
	}
	return bytes.TrimRight(data, "\r\n"), nil
}

// osReason strips the path from a file system error: the reason alone
// (no such file or directory, permission denied).
func osReason(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// resolveBeside makes a relative path relative to the directory of the
// routes file.
func resolveBeside(file, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(filepath.Dir(file), p)
}
