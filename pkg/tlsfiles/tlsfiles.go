// Package tlsfiles serves a TLS server identity from PEM files and reloads
// it when the files change, so that a renewed certificate is served
// without a restart. The MLLP listener (pkg/mllp) and the router's HTTP API
// both use it.
package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultCheckInterval is how often, at most, a Reloader looks at
// its files: at a handshake, when this long has passed since it last
// looked. Looking is one stat per file, so a busy listener costs the disk
// nothing, and a renewed certificate is served within a second of being
// written.
const DefaultCheckInterval = time.Second

// Files names the PEM files of a TLS server identity and, optionally,
// of the certificate authorities that client certificates must chain to.
type Files struct {
	// CertFile holds the server certificate, followed by any intermediate
	// certificates; KeyFile holds its private key. Both are required.
	CertFile, KeyFile string
	// ClientCAFile, when set, holds one or more CA certificates. Every
	// client must then present a certificate that chains to one of them
	// (mutual TLS); a client without one, or with one signed by another
	// CA, fails the handshake. Empty: client certificates are not asked
	// for.
	ClientCAFile string
	// CheckInterval: zero means DefaultCheckInterval; negative means
	// the files are looked at on every handshake.
	CheckInterval time.Duration
	// Logger receives reloads and reload failures; nil discards them.
	Logger *slog.Logger
	// Component starts the log messages and errors ("mllp", "api"), so
	// that an operator knows whose certificate it is; empty means "tls".
	Component string
}

// A Reloader serves the certificate, key and client CAs of its
// Files and re-reads them when they change, so that a renewed
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
type Reloader struct {
	files    Files
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

// Stats is a snapshot of a Reloader's counters.
type Stats struct {
	// Reloads counts changes of the files that were loaded, after the
	// first load.
	Reloads uint64
	// Failures counts changes of the files that could not be loaded; the
	// previous certificate stayed in use.
	Failures uint64
	// NotAfter is when the certificate being served expires.
	NotAfter time.Time
}

// NewReloader loads files. It fails if they cannot be loaded: a
// listener must not start without its certificate.
func NewReloader(files Files) (*Reloader, error) {
	if files.CertFile == "" || files.KeyFile == "" {
		return nil, fmt.Errorf("%s: TLS needs both a certificate file and a key file", files.component())
	}
	r := &Reloader{files: files, interval: files.CheckInterval, log: files.Logger}
	if r.interval == 0 {
		r.interval = DefaultCheckInterval
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
func (r *Reloader) Config() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return r.current(), nil
		},
	}
}

// Stats returns a snapshot of the reloader's counters.
func (r *Reloader) Stats() Stats {
	return Stats{
		Reloads:  r.reloads.Load(),
		Failures: r.failures.Load(),
		NotAfter: time.Unix(r.notAfter.Load(), 0),
	}
}

// current returns the configuration to use for a handshake, first
// reloading the files if it is time to look at them and they changed.
func (r *Reloader) current() *tls.Config {
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
		r.log.Error(r.files.component()+": TLS files changed but cannot be loaded; still serving the previous certificate",
			"err", err, "not_after", time.Unix(r.notAfter.Load(), 0).UTC())
		return cur
	}
	r.cur.Store(next)
	r.notAfter.Store(leaf.NotAfter.Unix())
	r.reloads.Add(1)
	r.log.Info(r.files.component()+": TLS certificate reloaded", "cert_file", r.files.CertFile,
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

func (f Files) stamps() [3]fileStamp {
	return [3]fileStamp{stampOf(f.CertFile), stampOf(f.KeyFile), stampOf(f.ClientCAFile)}
}

func (f Files) component() string {
	if f.Component == "" {
		return "tls"
	}
	return f.Component
}

// load reads the files into a server configuration and returns it with
// the leaf certificate.
func (f Files) load() (*tls.Config, *x509.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: load TLS certificate %s and key %s: %w", f.component(), f.CertFile, f.KeyFile, err)
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, nil, fmt.Errorf("%s: parse TLS certificate %s: %w", f.component(), f.CertFile, err)
		}
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
	}
	if f.ClientCAFile != "" {
		pem, err := os.ReadFile(f.ClientCAFile)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: read TLS client CA file: %w", f.component(), err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, nil, fmt.Errorf("%s: TLS client CA file %s holds no PEM certificate", f.component(), f.ClientCAFile)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, leaf, nil
}
