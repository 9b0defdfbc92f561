package mllp

import (
	"crypto/tls"
	"errors"
	"io"

	"github.com/aortahealth/aorta/pkg/tlsfiles"
)

// The certificate reloader moved to pkg/tlsfiles, which the router's HTTP
// API shares; these names keep this package's API as it was.

// DefaultTLSCheckInterval is tlsfiles.DefaultCheckInterval.
const DefaultTLSCheckInterval = tlsfiles.DefaultCheckInterval

// TLSFiles is tlsfiles.Files.
type TLSFiles = tlsfiles.Files

// TLSReloader is tlsfiles.Reloader.
type TLSReloader = tlsfiles.Reloader

// TLSReloadStats is tlsfiles.Stats.
type TLSReloadStats = tlsfiles.Stats

// NewTLSReloader is tlsfiles.NewReloader, with log messages and errors
// starting "mllp:" unless files name another component.
func NewTLSReloader(files TLSFiles) (*TLSReloader, error) {
	if files.Component == "" {
		files.Component = "mllp"
	}
	return tlsfiles.NewReloader(files)
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
