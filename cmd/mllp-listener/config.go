package main

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/aortahealth/aorta/internal/envflag"
	"github.com/aortahealth/aorta/pkg/ingest"
	"github.com/aortahealth/aorta/pkg/mllp"
)

// config is everything the listener can be told. Each field is a flag whose
// default comes from an environment variable, then from a constant:
// flag > environment > default.
type config struct {
	DatabaseURL string
	MLLPAddr    string
	HTTPAddr    string
	Name        string
	LogLevel    string
	AutoMigrate bool
	DBWait      time.Duration
	DBMaxConns  int

	MaxFrameSize   int
	IdleTimeout    time.Duration
	FrameTimeout   time.Duration
	WriteTimeout   time.Duration
	KeepAlive      time.Duration
	MaxConnections int
	MaxDiscard     int

	TLSCert             string
	TLSKey              string
	TLSClientCA         string
	TLSHandshakeTimeout time.Duration
	AllowCIDRs          string
	AllowedNets         []netip.Prefix // parsed from AllowCIDRs
	MaxConnsPerIP       int
	RateLimit           float64
	RateBurst           int
	RateLimitMaxWait    time.Duration

	DedupWindow      time.Duration
	StoreRetryBudget time.Duration
	OnStoreFailure   string
	AckMode          string
	ProcessingIDs    string
	RejectTypes      string
	CommitMaxGroup   int
	Committers       int
	CommitFailHold   time.Duration

	ShutdownTimeout time.Duration
}

// Defaults that belong to the binary rather than to a package.
const (
	// defaultMLLPAddr is the IANA-registered HL7 port, on loopback: opening
	// it to the network is a deliberate act.
	defaultMLLPAddr = "127.0.0.1:2575"
	defaultHTTPAddr = "127.0.0.1:9575"
	// defaultDBWait is how long start-up waits for the database before
	// giving up, so that a listener started alongside PostgreSQL (or
	// restarted by systemd during a database restart) comes up by itself.
	defaultDBWait = 60 * time.Second
	// defaultShutdownTimeout bounds the graceful drain: in-flight frames
	// finish their commit and ACK; after it, connections are cut.
	defaultShutdownTimeout = 30 * time.Second
	defaultDBMaxConns      = 8
)

// parseConfig reads flags, with defaults taken from the environment.
func parseConfig(fs *flag.FlagSet, args []string) (config, error) {
	var c config
	f := envflag.New(fs)
	str, integer, dur, boolean, float := f.String, f.Int, f.Duration, f.Bool, f.Float64
	host, _ := os.Hostname()

	str(&c.DatabaseURL, "database-url", "DATABASE_URL", "", "PostgreSQL connection URL (required), e.g. postgres://user@127.0.0.1:5432/aorta")
	str(&c.MLLPAddr, "mllp-addr", "MLLP_ADDR", defaultMLLPAddr, "TCP address to accept MLLP connections on")
	str(&c.HTTPAddr, "http-addr", "HTTP_ADDR", defaultHTTPAddr, "admin HTTP address for /healthz, /readyz and /metrics; empty disables it")
	str(&c.Name, "name", "LISTENER_NAME", "mllp-listener@"+host, "name of this listener, stored with every message")
	str(&c.LogLevel, "log-level", "LOG_LEVEL", "info", "log level: debug, info, warn or error (debug adds per-message lines, still without patient data)")
	boolean(&c.AutoMigrate, "migrate", "AUTO_MIGRATE", true, "apply pending database migrations at start-up")
	dur(&c.DBWait, "db-wait", "DB_WAIT", defaultDBWait, "how long start-up waits for the database to become reachable")
	integer(&c.DBMaxConns, "db-max-conns", "DB_MAX_CONNS", defaultDBMaxConns, "maximum database connections")

	integer(&c.MaxFrameSize, "max-frame-size", "MLLP_MAX_FRAME_SIZE", mllp.DefaultMaxFrameSize, "largest MLLP frame accepted, in bytes; a larger one closes the connection")
	dur(&c.IdleTimeout, "idle-timeout", "MLLP_IDLE_TIMEOUT", mllp.DefaultIdleTimeout, "close a connection that starts no frame for this long; negative disables")
	dur(&c.FrameTimeout, "frame-timeout", "MLLP_FRAME_TIMEOUT", mllp.DefaultFrameTimeout, "close a connection whose started frame does not complete within this time")
	dur(&c.WriteTimeout, "write-timeout", "MLLP_WRITE_TIMEOUT", mllp.DefaultWriteTimeout, "close a connection that does not take its ACK within this time")
	dur(&c.KeepAlive, "keepalive", "MLLP_KEEPALIVE", mllp.DefaultKeepAlive, "TCP keep-alive period; negative disables")
	integer(&c.MaxConnections, "max-connections", "MLLP_MAX_CONNECTIONS", mllp.DefaultMaxConnections, "connections served at once; more are closed on accept")
	integer(&c.MaxDiscard, "max-discard", "MLLP_MAX_DISCARD", mllp.DefaultMaxDiscard, "bytes outside a frame tolerated in a row before the connection is closed")

	str(&c.TLSCert, "tls-cert", "MLLP_TLS_CERT", "", "PEM server certificate (and intermediates): serve MLLP over TLS 1.2+ instead of plain MLLP; re-read when the file changes")
	str(&c.TLSKey, "tls-key", "MLLP_TLS_KEY", "", "PEM private key of --tls-cert; re-read when the file changes")
	str(&c.TLSClientCA, "tls-client-ca", "MLLP_TLS_CLIENT_CA", "", "PEM CA bundle: require client certificates signed by one of these CAs (mutual TLS); re-read when the file changes")
	dur(&c.TLSHandshakeTimeout, "tls-handshake-timeout", "MLLP_TLS_HANDSHAKE_TIMEOUT", mllp.DefaultHandshakeTimeout, "close a TLS connection whose handshake does not complete within this time")
	str(&c.AllowCIDRs, "allow-cidr", "MLLP_ALLOW_CIDRS", "", "comma-separated networks (CIDRs or single addresses, IPv4 and IPv6) senders may connect from; others are closed at once; empty allows all")
	integer(&c.MaxConnsPerIP, "max-conns-per-ip", "MLLP_MAX_CONNS_PER_IP", 0, "connections one remote IP may have open at once; more are closed on accept; 0 means no limit")
	float(&c.RateLimit, "rate-limit", "MLLP_RATE_LIMIT", 0, "messages per second one remote IP may send, across its connections; faster senders are slowed (their next frame is read later), never rejected; 0 means no limit")
	integer(&c.RateBurst, "rate-burst", "MLLP_RATE_BURST", 0, "messages one remote IP may send at once above --rate-limit; 0 means one second's worth")
	dur(&c.RateLimitMaxWait, "rate-limit-max-wait", "MLLP_RATE_LIMIT_MAX_WAIT", mllp.DefaultRateLimitMaxWait, "longest a frame waits for --rate-limit; beyond it the connection is closed unanswered (the sender resends); negative waits as long as needed")

	dur(&c.DedupWindow, "dedup-window", "DEDUP_WINDOW", ingest.DefaultDedupWindow, "a re-send with the same sender, control ID and bytes within this window gets the stored ACK and is not stored again; negative disables")
	dur(&c.StoreRetryBudget, "store-retry-budget", "STORE_RETRY_BUDGET", ingest.DefaultStoreRetryBudget, "how long to retry a failing commit before giving up on the frame (never a positive ACK)")
	str(&c.OnStoreFailure, "on-store-failure", "ON_STORE_FAILURE", string(ingest.OnStoreFailureClose), "when a frame cannot be stored: close (no answer; the sender re-sends) or reject (AR/CR with ERR 207)")
	str(&c.AckMode, "ack-mode", "ACK_MODE", string(ingest.AckModeAuto), "auto: honour enhanced mode when MSH-15/16 are valued; original: always AA/AE/AR")
	str(&c.ProcessingIDs, "processing-ids", "PROCESSING_IDS", strings.Join(ingest.DefaultProcessingIDs, ","), "MSH-11 processing IDs accepted; others are rejected with ERR 202")
	str(&c.RejectTypes, "reject-types", "REJECT_TYPES", strings.Join(ingest.DefaultRejectTypes, ","), "MSH-9.1 message codes rejected with ERR 200 (queries need an application response)")
	integer(&c.CommitMaxGroup, "commit-max-group", "COMMIT_MAX_GROUP", ingest.DefaultMaxGroup, "most frames stored in one transaction (group commit)")
	integer(&c.Committers, "committers", "COMMITTERS", ingest.DefaultCommitters, "transactions in flight at once")
	dur(&c.CommitFailHold, "commit-failure-hold", "COMMIT_FAILURE_HOLD", ingest.DefaultCommitFailureHold, "after a commit fails on the database, /readyz reports not ready until a commit succeeds, or for this long after the last failure")

	dur(&c.ShutdownTimeout, "shutdown-timeout", "SHUTDOWN_TIMEOUT", defaultShutdownTimeout, "on SIGTERM/SIGINT, how long in-flight messages may take to commit and be acknowledged")

	if err := f.Parse(args); err != nil {
		return c, err
	}
	if c.DatabaseURL == "" {
		return c, fmt.Errorf("no database: set DATABASE_URL or --database-url (make run does this for you)")
	}
	if _, err := envflag.ParseLevel(c.LogLevel); err != nil {
		return c, err
	}
	if err := c.checkSenderSecurity(); err != nil {
		return c, err
	}
	return c, nil
}

// checkSenderSecurity validates the TLS and per-sender settings and parses
// the allow-list.
func (c *config) checkSenderSecurity() error {
	var errs []error
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("TLS needs both --tls-cert and --tls-key (MLLP_TLS_CERT, MLLP_TLS_KEY)"))
	}
	if c.TLSClientCA != "" && c.TLSCert == "" {
		errs = append(errs, errors.New("--tls-client-ca (MLLP_TLS_CLIENT_CA) needs TLS: set --tls-cert and --tls-key"))
	}
	nets, err := parseCIDRs(c.AllowCIDRs)
	if err != nil {
		errs = append(errs, err)
	}
	c.AllowedNets = nets
	if c.MaxConnsPerIP < 0 {
		errs = append(errs, fmt.Errorf("--max-conns-per-ip %d: want 0 (no limit) or more", c.MaxConnsPerIP))
	}
	if c.RateLimit < 0 || math.IsNaN(c.RateLimit) || math.IsInf(c.RateLimit, 0) {
		errs = append(errs, fmt.Errorf("--rate-limit %v: want messages per second, 0 for no limit", c.RateLimit))
	}
	if c.RateBurst < 0 {
		errs = append(errs, fmt.Errorf("--rate-burst %d: want 0 (one second's worth) or more", c.RateBurst))
	}
	return errors.Join(errs...)
}

// parseCIDRs reads a comma-separated allow-list. A single address stands
// for itself (a /32 or /128 network).
func parseCIDRs(s string) ([]netip.Prefix, error) {
	var nets []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !strings.Contains(f, "/") {
			a, err := netip.ParseAddr(f)
			if err != nil {
				return nil, fmt.Errorf("--allow-cidr (MLLP_ALLOW_CIDRS): %q is neither a CIDR nor an IP address", f)
			}
			nets = append(nets, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("--allow-cidr (MLLP_ALLOW_CIDRS): %q is not a CIDR such as 10.0.0.0/8 or 2001:db8::/32", f)
		}
		nets = append(nets, p)
	}
	return nets, nil
}

func (c config) ingestConfig() ingest.Config {
	return ingest.Config{
		Listener:         c.Name,
		DedupWindow:      c.DedupWindow,
		StoreRetryBudget: c.StoreRetryBudget,
		MaxGroup:         c.CommitMaxGroup,
		Committers:       c.Committers,
		AckMode:          ingest.AckMode(c.AckMode),
		OnStoreFailure:   ingest.StoreFailureAction(c.OnStoreFailure),
		ProcessingIDs:    ingest.ParseList(c.ProcessingIDs),
		RejectTypes:      ingest.ParseList(c.RejectTypes),
		// How long a failed commit keeps /readyz failing.
		CommitFailureHold: c.CommitFailHold,
	}
}

func (c config) logAttrs() []any {
	return []any{
		"database_url", envflag.RedactURL(c.DatabaseURL), "http_addr", c.HTTPAddr, "name", c.Name,
		"max_frame_size", c.MaxFrameSize, "idle_timeout", c.IdleTimeout, "frame_timeout", c.FrameTimeout,
		"write_timeout", c.WriteTimeout, "keepalive", c.KeepAlive, "max_connections", c.MaxConnections, "max_discard", c.MaxDiscard,
		"tls", c.TLSCert != "", "tls_cert", c.TLSCert, "tls_key", c.TLSKey, "tls_client_ca", c.TLSClientCA,
		"tls_handshake_timeout", c.TLSHandshakeTimeout, "allow_cidr", c.AllowCIDRs, "max_conns_per_ip", c.MaxConnsPerIP,
		"rate_limit", c.RateLimit, "rate_burst", c.RateBurst, "rate_limit_max_wait", c.RateLimitMaxWait,
		"dedup_window", c.DedupWindow, "store_retry_budget", c.StoreRetryBudget, "on_store_failure", c.OnStoreFailure,
		"ack_mode", c.AckMode, "processing_ids", c.ProcessingIDs, "reject_types", c.RejectTypes,
		"commit_max_group", c.CommitMaxGroup, "committers", c.Committers, "commit_failure_hold", c.CommitFailHold, "auto_migrate", c.AutoMigrate,
	}
}
