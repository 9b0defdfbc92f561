package ingest

import (
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Defaults for Config; each has a listener flag.
const (
	// DefaultDedupWindow is how far back a re-sent message is recognised.
	// Senders re-send after ACK timeouts of seconds to minutes, and after
	// an interface restart perhaps hours later; a day covers both while
	// keeping the lookup on a narrow index range.
	DefaultDedupWindow = 24 * time.Hour
	// DefaultStoreRetryBudget is how long a frame may wait for a failing
	// database before we give up on it. It stays well under the 30-60 s
	// ACK timeouts senders use, so the sender sees our answer (or our
	// closed connection) rather than its own timeout.
	DefaultStoreRetryBudget = 5 * time.Second
	// DefaultMaxGroup is the most frames one commit carries. Larger groups
	// amortise the commit's fsync further but make every ACK in the group
	// wait for the whole insert.
	DefaultMaxGroup = 128
	// DefaultCommitters is how many transactions may be in flight at once.
	// Two lets one group insert while the previous one waits for fsync.
	DefaultCommitters = 2
	// DefaultCommitFailureHold is how long a commit that failed on the
	// database keeps CheckCommits (the listener's readiness) failing when
	// no commit succeeds after it; see CheckCommits for why it expires. A
	// minute is longer than load balancers take to act on failing checks
	// (Kubernetes by default: 3 failures 10 s apart; HAProxy: 3 failures
	// 2 s apart), so a listener whose traffic is sparse is still taken out
	// of rotation, and short enough that after a database blip a listener
	// with no traffic to prove it is back rejoins within a minute.
	DefaultCommitFailureHold = time.Minute
)

// DefaultProcessingIDs are the MSH-11 values accepted: production,
// debugging and training (HL7 table 0103).
var DefaultProcessingIDs = []string{"P", "D", "T"}

// DefaultRejectTypes are message codes answered with AR and error 200
// (unsupported message type): queries expect an application response with
// data, which a store-and-forward listener cannot give, and acknowledging
// them would leave the sender waiting for an answer that never comes.
var DefaultRejectTypes = []string{"QRY", "QBP", "QSB", "QVR", "VXQ", "SPQ", "RQQ", "VQQ", "ERQ", "EQQ"}

// AckMode selects how MSH-15/MSH-16 are treated.
type AckMode string

const (
	// AckModeAuto honours enhanced acknowledgement mode when the sender
	// values MSH-15 or MSH-16, and uses original mode otherwise.
	AckModeAuto AckMode = "auto"
	// AckModeOriginal always answers AA/AE/AR, for senders that value
	// MSH-15/16 but still wait for an ACK on every message.
	AckModeOriginal AckMode = "original"
)

// StoreFailureAction is what the sender sees when a message could not be
// stored within the retry budget. Either way it never gets a positive ACK.
type StoreFailureAction string

const (
	// OnStoreFailureClose closes the connection without answering; the
	// sender's MLLP client reconnects and re-sends. This is the safest
	// default: every sender handles it, and none treats it as delivered.
	OnStoreFailureClose StoreFailureAction = "close"
	// OnStoreFailureReject answers AR (or CR) with ERR code 207
	// (application internal error), for senders that re-send on AR.
	OnStoreFailureReject StoreFailureAction = "reject"
)

// Config configures an Ingester. Zero values take the defaults above.
type Config struct {
	// Listener names this listener instance in stored rows.
	Listener         string
	DedupWindow      time.Duration // negative disables de-duplication
	StoreRetryBudget time.Duration
	MaxGroup         int
	Committers       int
	AckMode          AckMode
	OnStoreFailure   StoreFailureAction
	ProcessingIDs    []string
	RejectTypes      []string
	Logger           *slog.Logger
	Metrics          *Metrics // nil: metrics are not recorded
	// Now is the clock; tests replace it.
	Now func() time.Time
	// CommitFailureHold bounds how long CheckCommits fails after the last
	// failed commit; see DefaultCommitFailureHold.
	CommitFailureHold time.Duration
}

func (c Config) withDefaults() (Config, error) {
	if c.Listener == "" {
		c.Listener = "mllp-listener"
	}
	if c.DedupWindow == 0 {
		c.DedupWindow = DefaultDedupWindow
	}
	if c.StoreRetryBudget <= 0 {
		c.StoreRetryBudget = DefaultStoreRetryBudget
	}
	if c.MaxGroup <= 0 {
		c.MaxGroup = DefaultMaxGroup
	}
	if c.Committers <= 0 {
		c.Committers = DefaultCommitters
	}
	if c.CommitFailureHold <= 0 {
		c.CommitFailureHold = DefaultCommitFailureHold
	}
	switch c.AckMode {
	case "":
		c.AckMode = AckModeAuto
	case AckModeAuto, AckModeOriginal:
	default:
		return c, fmt.Errorf("ack mode %q: want auto or original", c.AckMode)
	}
	switch c.OnStoreFailure {
	case "":
		c.OnStoreFailure = OnStoreFailureClose
	case OnStoreFailureClose, OnStoreFailureReject:
	default:
		return c, fmt.Errorf("store failure action %q: want close or reject", c.OnStoreFailure)
	}
	if c.ProcessingIDs == nil {
		c.ProcessingIDs = DefaultProcessingIDs
	}
	if c.RejectTypes == nil {
		c.RejectTypes = DefaultRejectTypes
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, nil
}

// ParseList splits a comma-separated flag value, dropping blanks and
// upper-casing, as HL7 codes are upper case.
func ParseList(s string) []string {
	out := []string{}
	for _, p := range strings.Split(s, ",") {
		if p = strings.ToUpper(strings.TrimSpace(p)); p != "" {
			out = append(out, p)
		}
	}
	return out
}
