package mllp

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultTLSCheckInterval is how often, at most, a TLSReloader looks at
// its files: at a handshake, when this long has passed since it last
// looked. Looking is one stat per file, so a busy listener costs the disk
// nothing, and a renewed certificate is served within a second of being
// written.
const DefaultTLSCheckInterval = time.Second

// TLSFiles names the PEM files of a TLS server identity and, optionally,
// of the certificate authorities that client certificates must chain to.
type TLSFiles struct {
	// CertFile holds the server certificate, followed by any intermediate
	// certificates; KeyFile holds its private key. Both are required.
	CertFile, KeyFile string
	// ClientCAFile, when set, holds one or more CA certificates. Every
	// client must then present a certificate that chains to one of them
	// (mutual TLS); a client without one, or with one signed by another
	// CA, fails the handshake. Empty: client certificates are not asked
	// for.
	ClientCAFile string
	// CheckInterval: zero means DefaultTLSCheckInterval; negative means
	// the files are looked at on every handshake.
	CheckInterval time.Duration
	// Logger receives reloads and reload failures; nil discards them.
	Logger *slog.Logger
}

// A TLSReloader serves the certificate, key and client CAs of its
// TLSFiles and re-reads them when they change, so that a renewed
// certificate is served without a restart.
//
// At a handshake, at most once per CheckInterval, it compares the files'
// modification times and sizes with those it last loaded. When any has
// changed it loads all of them again; the next handshakes present the new
// certificate, and connections already open keep theirs. A change that
// cannot be loaded (a file missing, unparseable, or a key that does not
// match the certificate, as happens for a moment when the certificate has
// been replaced but not yet the key) is logged and counted, and the
// previous files stay in use until the next change loads.
type TLSReloader struct {
	files    TLSFiles
	interval time.Duration
	log      *slog.Logger

	cur      atomic.Pointer[tls.Config]
	notAfter atomic.Int64 // Unix seconds: expiry of cur's certificate
	reloads  atomic.Uint64
	failures atomic.Uint64

	// mu is held by the one handshake that looks at the files; the
	// others use cur meanwhile.
	mu        sync.Mutex
	stamps    [3]fileStamp // of the files when last loaded or tried
	nextCheck time.Time
}

// TLSReloadStats is a snapshot of a TLSReloader's counters.
type TLSReloadStats struct {
	// Reloads counts changes of the files that were loaded, after the
	// first load.
	Reloads uint64
	// Failures counts changes of the files that could not be loaded; the
	// previous certificate stayed in use.
	Failures uint64
	// NotAfter is when the certificate being served expires.
	NotAfter time.Time
}

// NewTLSReloader loads files. It fails if they cannot be loaded: a
// listener must not start without its certificate.
func NewTLSReloader(files TLSFiles) (*TLSReloader, error) {
	if files.CertFile == "" || files.KeyFile == "" {
		return nil, errors.New("mllp: TLS needs both a certificate file and a key file")
	}
	r := &TLSReloader{files: files, interval: files.CheckInterval, log: files.Logger}
	if r.interval == 0 {
		r.interval = DefaultTLSCheckInterval
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	r.stamps = files.stamps()
	cfg, leaf, err := files.load()
	if err != nil {
		return nil, err
	}
	r.cur.Store(cfg)
	r.notAfter.Store(leaf.NotAfter.Unix())
	r.nextCheck = time.Now().Add(r.interval)
	return r, nil
}

// Config returns the tls.Config to give a Server: at each handshake it
// supplies the current certificate, and client CAs if any, through
// GetConfigForClient.
func (r *TLSReloader) Config() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return r.current(), nil
		},
	}
}

// Stats returns a snapshot of the reloader's counters.
func (r *TLSReloader) Stats() TLSReloadStats {
	return TLSReloadStats{
		Reloads:  r.reloads.Load(),
		Failures: r.failures.Load(),
		NotAfter: time.Unix(r.notAfter.Load(), 0),
	}
}

// current returns the configuration to use for a handshake, first
// reloading the files if it is time to look at them and they changed.
func (r *TLSReloader) current() *tls.Config {
	cur := r.cur.Load()
	if !r.mu.TryLock() {
		return cur // another handshake is looking
	}
	defer r.mu.Unlock()
	now := time.Now()
	if r.interval > 0 {
		if now.Before(r.nextCheck) {
			return cur
		}
		r.nextCheck = now.Add(r.interval)
	}
	stamps := r.files.stamps()
	if stamps == r.stamps {
		return cur
	}
	// Remembered even if loading fails, so a bad file is reported once,
	// and tried again only when it changes.
	r.stamps = stamps
	next, leaf, err := r.files.load()
	if err != nil {
		r.failures.Add(1)
		r.log.Error("mllp: TLS files changed but cannot be loaded; still serving the previous certificate",
			"err", err, "not_after", time.Unix(r.notAfter.Load(), 0).UTC())
		return cur
	}
	r.cur.Store(next)
	r.notAfter.Store(leaf.NotAfter.Unix())
	r.reloads.Add(1)
	r.log.Info("mllp: TLS certificate reloaded", "cert_file", r.files.CertFile,
		"serial", leaf.SerialNumber.String(), "not_after", leaf.NotAfter.UTC(),
		"client_ca", r.files.ClientCAFile != "")
	return next
}

// fileStamp is what tells that a file changed: its modification time and
// size, or that it could not be read.
type fileStamp struct {
	modTime int64 // Unix nanoseconds
	size    int64
	ok      bool
}

func stampOf(name string) fileStamp {
	if name == "" {
		return fileStamp{}
	}
	fi, err := os.Stat(name)
	if err != nil {
		return fileStamp{}
	}
	return fileStamp{modTime: fi.ModTime().UnixNano(), size: fi.Size(), ok: true}
}

func (f TLSFiles) stamps() [3]fileStamp {
	return [3]fileStamp{stampOf(f.CertFile), stampOf(f.KeyFile), stampOf(f.ClientCAFile)}
}

// load reads the files into a server configuration and returns it with
// the leaf certificate.
func (f TLSFiles) load() (*tls.Config, *x509.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("mllp: load TLS certificate %s and key %s: %w", f.CertFile, f.KeyFile, err)
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, nil, fmt.Errorf("mllp: parse TLS certificate %s: %w", f.CertFile, err)
		}
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
	}
	if f.ClientCAFile != "" {
		pem, err := os.ReadFile(f.ClientCAFile)
		if err != nil {
			return nil, nil, fmt.Errorf("mllp: read TLS client CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, nil, fmt.Errorf("mllp: TLS client CA file %s holds no PEM certificate", f.ClientCAFile)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, leaf, nil
}

// atLeastTLS12 returns a copy of cfg that refuses versions below TLS 1.2,
// including in the configurations its GetConfigForClient returns; nil for
// nil.
func atLeastTLS12(cfg *tls.Config) *tls.Config {
	if cfg == nil {
		return nil
	}
	cfg = cfg.Clone()
	if cfg.MinVersion < tls.VersionTLS12 {
		cfg.MinVersion = tls.VersionTLS12
	}
	if get := cfg.GetConfigForClient; get != nil {
		cfg.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			c, err := get(hello)
			if c != nil && c.MinVersion < tls.VersionTLS12 {
				c = c.Clone()
				c.MinVersion = tls.VersionTLS12
			}
			return c, err
		}
	}
	return cfg
}

// handshake runs the server side of the TLS handshake within
// HandshakeTimeout and, if it succeeds, makes the TLS connection the one
// frames are read from and written to. It returns false, having counted
// and logged the failure, if the connection must close. The raw
// connection stays the one Shutdown and close close, so that closing never
// waits to send a TLS alert to a peer that does not read.
func (c *conn) handshake() bool {
	s := c.srv
	tc := tls.Server(c.rwc, c.cfg.tls)
	setDeadline(c.rwc.SetDeadline, c.cfg.handshakeTimeout)
	if err := tc.HandshakeContext(s.lifetime); err != nil {
		switch {
		case s.shuttingDown.Load():
			c.log.Debug("mllp: TLS handshake cut short by shutdown", "err", err)
		case errors.Is(err, io.EOF):
			// A TCP health check, or a client that gave up.
			s.stats.tlsHandshakeErrors.Add(1)
			c.log.Info("mllp: peer closed before completing the TLS handshake")
		default:
			// The error names the reason (no client certificate, unknown
			// authority, protocol version, timeout), never payload.
			s.stats.tlsHandshakeErrors.Add(1)
			c.log.Warn("mllp: TLS handshake failed; closing", "err", err,
				"handshake_timeout", c.cfg.handshakeTimeout)
		}
		return false
	}
	setDeadline(c.rwc.SetDeadline, -1) // the serve loop sets its own
	st := tc.ConnectionState()
	c.info.TLS = &st
	c.nc = tc
	c.log.Debug("mllp: TLS handshake done", "version", tls.VersionName(st.Version),
		"cipher_suite", tls.CipherSuiteName(st.CipherSuite), "client_certificate", len(st.PeerCertificates) > 0)
	return true
}
