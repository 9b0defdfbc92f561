package route

import (
	"time"

	"github.com/goccy/go-yaml/ast"
)

// Bounds of a feed's silence window. Below minSilence a busy sender's
// ordinary pauses would page someone; above maxSilence the window is no
// longer watching a feed but auditing it.
const (
	minSilence = 5 * time.Second
	maxSilence = 7 * 24 * time.Hour
)

// Feed is one sender the router watches for silence: the feed is idle
// when no message (of any status, rejected included: the sender is alive)
// arrived from it for longer than Silence.
type Feed struct {
	// Name is unique among the feeds and made of [a-z0-9_-]; metrics use
	// it as a label.
	Name string
	// SendingApplication is MSH-3 as stored (messages.sending_application).
	SendingApplication string
	// SendingFacility is MSH-4 as stored; "" means any facility.
	SendingFacility string
	// Silence is how long the feed may be silent before it is idle;
	// with Active, only the time inside its hours counts.
	Silence time.Duration
	// Active, when set, are the hours the feed is expected to send in.
	Active *Schedule
	// Notify are the destinations told when the feed goes idle and when
	// it resumes; none means the feed is surfaced (API, metrics, events)
	// without notifying anyone.
	Notify []*Destination
	// Line and Column locate the feed in the file.
	Line, Column int
}

// Sender is the feed's sender as the ops summary writes it: MSH-3^MSH-4,
// with * for any facility.
func (f *Feed) Sender() string {
	if f.SendingFacility == "" {
		return f.SendingApplication + "^*"
	}
	return f.SendingApplication + "^" + f.SendingFacility
}

// Feed returns the feed with this name, or nil.
func (c *Config) Feed(name string) *Feed {
	for _, f := range c.Feeds {
		if f.Name == name {
			return f
		}
	}
	return nil
}

// feeds decodes the feeds section. complete is false when a feed's
// notify list could not be read, so that no destination looks unused
// because of a mistake reported already.
func (d *decoder) feeds(e entry, c *Config, used map[string]bool) (feeds []*Feed, complete bool) {
	nodes, ok := d.list(e, `"feeds"`, false)
	if !ok {
		return nil, false
	}
	names := map[string]position{}
	complete = true
	for _, n := range nodes {
		f, read := d.feed(n, c, names, used)
		complete = complete && read
		if f != nil {
			feeds = append(feeds, f)
		}
	}
	return feeds, complete
}

func (d *decoder) feed(n ast.Node, c *Config, names map[string]position, used map[string]bool) (f *Feed, read bool) {
	start := posOf(d.resolveQuiet(n))
	f = &Feed{Line: start.line, Column: start.col}
	v, ok := d.object(n, feedObject, "")
	if !ok {
		return nil, false
	}
	if e, ok := v.get("name"); ok {
		f.Name = d.name(e, "feed name", names, "is already used")
	}
	if e, ok := v.get("sending_application"); ok {
		if s, p, ok := d.text(e, `"sending_application"`); ok {
			if s == "" {
				d.errorf(p, "sending_application is empty: name the MSH-3 of the feed's sender")
			}
			f.SendingApplication = s
		}
	}
	if e, ok := v.get("sending_facility"); ok {
		if s, p, ok := d.text(e, `"sending_facility"`); ok {
			if s == "" {
				d.errorf(p, "sending_facility is empty: name the MSH-4, or leave the key out for any facility")
			}
			f.SendingFacility = s
		}
	}
	if e, ok := v.get("silence"); ok {
		if dur, _, ok := d.duration(e, `"silence"`, minSilence, maxSilence, false); ok {
			f.Silence = dur
		}
	}
	if e, ok := v.get("active"); ok {
		f.Active = d.schedule(e, c, f.Silence)
	}
	read = true
	if e, ok := v.get("notify"); ok {
		f.Notify, read = d.destinationList(e, `"notify"`, c, used)
	}
	return f, read
}
