package route

import (
	"fmt"
	"strings"
	"time"
)

// Schedule is when a feed is expected to send: its silence counts only
// inside these hours, so that a clinic's feed that is quiet every night
// and weekend is not reported idle each evening (and resumed each
// morning) until people stop reading the notifications.
//
// A window opens at From on each of Days and closes at To, local time in
// Location; a To at or before From closes the next day (a night window,
// 22:00 to 06:00), and belongs to the day it opened. Times are wall-clock
// times, so a window keeps its hours across a daylight-saving change (and
// is an hour shorter or longer that night).
type Schedule struct {
	Days     [7]bool // by time.Weekday
	From, To clock
	Location *time.Location
}

// clock is a time of day, in minutes after midnight.
type clock int

func (c clock) String() string { return fmt.Sprintf("%02d:%02d", c/60, c%60) }

// parseClock reads HH:MM, 00:00 to 24:00.
func parseClock(s string) (clock, bool) {
	if len(s) != 5 || s[2] != ':' {
		return 0, false
	}
	for _, i := range []int{0, 1, 3, 4} {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	h, m := int(s[0]-'0')*10+int(s[1]-'0'), int(s[3]-'0')*10+int(s[4]-'0')
	if h > 24 || m > 59 || (h == 24 && m != 0) {
		return 0, false
	}
	return clock(h*60 + m), true
}

// scheduleSearch bounds how far back Active looks: a schedule must hold
// at least a feed's silence each week (checked when the file is read),
// so any span longer than two weeks holds more than the silence, and the
// answer (idle or not) is the same as for the whole span.
const scheduleSearch = 15 * 24 * time.Hour

// Active returns how much of [from, to) lies inside the schedule, at most
// a little over two weeks' worth (see scheduleSearch).
func (s *Schedule) Active(from, to time.Time) time.Duration {
	if !to.After(from) {
		return 0
	}
	if to.Sub(from) > scheduleSearch {
		from = to.Add(-scheduleSearch)
	}
	var total time.Duration
	s.windows(from, func(start, end time.Time) bool {
		if !start.Before(to) {
			return false
		}
		total += earlier(end, to).Sub(later(start, from))
		return true
	})
	return total
}

// After returns the instant at which d of the schedule's time has passed
// since from: when a feed silent since from becomes idle.
func (s *Schedule) After(from time.Time, d time.Duration) time.Time {
	var at time.Time
	left := d
	s.windows(from, func(start, end time.Time) bool {
		start = later(start, from)
		if span := end.Sub(start); span < left {
			left -= span
			return true
		}
		at = start.Add(left)
		return false
	})
	return at
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// windows calls f with the schedule's windows, in order, from the one
// open at from (or the next), clipped to nothing before from, until f
// returns false. It stops after scheduleSearch plus two weeks of days
// whatever f says, which the check at load time makes unreachable.
func (s *Schedule) windows(from time.Time, f func(start, end time.Time) bool) {
	local := from.In(s.Location)
	// From the day before: a night window that opened then may still be
	// open at from.
	day := time.Date(local.Year(), local.Month(), local.Day()-1, 12, 0, 0, 0, s.Location)
	for range int(scheduleSearch/(24*time.Hour)) + 16 {
		if s.Days[day.Weekday()] {
			start := s.at(day, s.From)
			endDay := day
			if s.To <= s.From {
				endDay = day.AddDate(0, 0, 1)
			}
			end := s.at(endDay, s.To)
			if end.After(from) && end.After(start) && !f(start, end) {
				return
			}
		}
		day = day.AddDate(0, 0, 1)
	}
}

// at is the instant of clock c on day's date, in the schedule's zone.
func (s *Schedule) at(day time.Time, c clock) time.Time {
	return time.Date(day.Year(), day.Month(), day.Day(), int(c)/60, int(c)%60, 0, 0, s.Location)
}

// weekly is the schedule's time in one week, on its nominal hours.
func (s *Schedule) weekly() time.Duration {
	per := time.Duration(s.To-s.From) * time.Minute
	if s.To <= s.From {
		per += 24 * time.Hour
	}
	n := 0
	for _, on := range s.Days {
		if on {
			n++
		}
	}
	return time.Duration(n) * per
}

// String describes the schedule as the file would: "mon-fri 07:00-19:00
// Europe/London".
func (s *Schedule) String() string {
	return strings.Join(s.DayNames(), ",") + " " + s.From.String() + "-" + s.To.String() + " " + s.Location.String()
}

// DayNames are the schedule's days, Monday first.
func (s *Schedule) DayNames() []string {
	var out []string
	for i := range 7 {
		wd := time.Weekday((i + 1) % 7)
		if s.Days[wd] {
			out = append(out, dayNames[wd])
		}
	}
	return out
}

var dayNames = [7]string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

// schedule decodes a feed's active hours; the zone defaults to the
// file's.
func (d *decoder) schedule(e entry, c *Config, silence time.Duration) *Schedule {
	v, ok := d.object(e.value, activeObject, `"active"`)
	if !ok {
		return nil
	}
	s := &Schedule{Location: c.Timezone}
	good := true
	if e, ok := v.get("days"); ok {
		items, ok := d.textList(e, `"days"`, false)
		good = good && ok
		for _, it := range items {
			found := false
			for wd, name := range dayNames {
				if strings.EqualFold(it.text, name) {
					if s.Days[wd] {
						d.errorf(it.pos, "day %q is listed twice", it.text)
						good = false
					}
					s.Days[wd], found = true, true
				}
			}
			if !found {
				d.errorf(it.pos, "day %q is not one of mon, tue, wed, thu, fri, sat, sun%s", it.text, suggest(strings.ToLower(it.text), dayNames[:]))
				good = false
			}
		}
		if ok && len(items) == 0 {
			d.errorf(e.pos, `"days" is empty: list the days the feed sends on, or leave the key out for every day`)
			good = false
		}
	} else {
		s.Days = [7]bool{true, true, true, true, true, true, true}
	}
	for _, k := range []struct {
		key string
		to  *clock
	}{{"from", &s.From}, {"to", &s.To}} {
		e, ok := v.get(k.key)
		if !ok {
			good = false
			continue
		}
		t, p, ok := d.text(e, `"`+k.key+`"`)
		if !ok {
			good = false
			continue
		}
		if *k.to, ok = parseClock(t); !ok {
			d.errorf(p, "%s %q is not a time of day: write HH:MM, 00:00 to 24:00", k.key, t)
			good = false
		}
	}
	if e, ok := v.get("timezone"); ok {
		if loc, ok := d.timezone(e); ok {
			s.Location = loc
		} else {
			good = false
		}
	}
	if !good {
		return nil
	}
	switch {
	case s.From == 24*60:
		d.errorf(v.at, `active hours cannot start at 24:00: write from: "00:00"`)
		return nil
	case s.From == s.To:
		d.errorf(v.at, `active hours from %s to %s: for the whole day write from: "00:00" and to: "24:00", or leave "active" out`, s.From, s.To)
		return nil
	}
	if w := s.weekly(); silence > 0 && w < silence {
		d.errorf(v.at, "active hours hold %v a week, less than the feed's silence of %v: the feed could never be idle", w, silence)
		return nil
	}
	return s
}
