package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// The web console in a real browser: Debian's Chromium, headless, driven
// over the DevTools protocol by chromedp, against the real listener and
// router binaries. An interface analyst's round trip: log in with a
// token, find a message by its control ID, open it, reprocess it, then
// acknowledge the alert its vital signs raised; the database must show
// each action done and audited under the token's name.

// chromiumPaths are where Debian's chromium package puts the browser.
var chromiumPaths = []string{"chromium", "/usr/bin/chromium", "chromium-browser"}

// browserStepTimeout bounds each step of the browser scenario; the whole
// test is bounded by browserTimeout.
const (
	browserStepTimeout = 20 * time.Second
	browserTimeout     = 3 * time.Minute
)

// findChromium returns the browser's path, or fails the test: CI installs
// it (scripts/deps --test), and a browser test that skipped would pass
// having tested nothing.
func findChromium(t *testing.T) string {
	t.Helper()
	for _, name := range chromiumPaths {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatalf("the console browser test needs Chromium and found none (looked for %s): install it with "+
		"`scripts/deps --test` (Debian's chromium package) or `apt-get install chromium`", strings.Join(chromiumPaths, ", "))
	return ""
}

// newBrowser starts a headless Chromium with a profile of the test's own
// and returns a chromedp context on a blank tab, bounded by ctx (chromedp
// stops the whole browser when the context of its first run ends). The
// flags keep it off the network: this machine's network is closed, and
// Chromium would otherwise try Google's services at every start.
func newBrowser(t *testing.T, ctx context.Context) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(findChromium(t)),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.WindowSize(1400, 1000),
	)
	if os.Geteuid() == 0 {
		// Chromium refuses to start as root with its sandbox (CI runs as
		// root); the pages it opens are the test's own.
		opts = append(opts, chromedp.NoSandbox)
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	bctx, cancelBrowser := chromedp.NewContext(alloc)
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
	})
	start := time.Now()
	if err := chromedp.Do(bctx); err != nil { // starts the browser
		t.Fatalf("start Chromium: %v", err)
	}
	t.Logf("browser: Chromium started in %v", time.Since(start).Round(time.Millisecond))
	return bctx
}

// browserStep runs steps with a deadline; on failure it reports the page
// the browser was on and its text, then fails the test.
func browserStep(t *testing.T, bctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(bctx, browserStepTimeout)
	defer cancel()
	start := time.Now()
	if err := chromedp.Do(ctx, steps...); err != nil {
		browserFail(t, bctx, what, err, start)
	}
	t.Logf("browser: %s (%v)", what, time.Since(start).Round(time.Millisecond))
}

// screenshot saves the page as name.png in $AORTA_CONSOLE_SCREENSHOTS
// when that is set: a way to look at the console as the test leaves it.
func screenshot(t *testing.T, bctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("AORTA_CONSOLE_SCREENSHOTS")
	if dir == "" {
		return
	}
	png := browserRead(t, bctx, "screenshot "+name, chromedp.FullScreenshot(100))
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatalf("save screenshot: %v", err)
	}
}

// browserRead runs one action that reads a value, with a deadline.
func browserRead[T any](t *testing.T, bctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(bctx, browserStepTimeout)
	defer cancel()
	start := time.Now()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		browserFail(t, bctx, what, err, start)
	}
	return v
}

func browserFail(t *testing.T, bctx context.Context, what string, err error, start time.Time) {
	t.Helper()
	dctx, cancel := context.WithTimeout(bctx, 5*time.Second)
	defer cancel()
	loc, _ := chromedp.Run(dctx, chromedp.Location())
	text, _ := chromedp.Run(dctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	t.Fatalf("browser: %s: %v (after %v)\npage %s:\n%s", what, err, time.Since(start).Round(time.Millisecond), loc, text)
}

func TestConsoleBrowser(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), browserTimeout)
	defer cancel()
	bctx := newBrowser(t, ctx) // first, so a missing browser fails before anything starts

	rig := startScoring(t, "")
	const (
		cid   = "CONSOLE-OBS-1"
		mrn   = "CONSOLE0001"
		actor = "console.admin"
	)
	// NEWS2 7 (emergency) for an adult: raises an open news2 alert.
	rig.apply(nursingSet(cid, mrn, "1000", setEmergency))
	msgID := messageID(t, rig.db, cid)
	var alertID string
	queryRow(t, rig.db, `SELECT id::text FROM alerts WHERE patient_key = $1 AND rule = 'news2' AND status = 'open'`,
		[]any{"GENHOSP/" + mrn}, &alertID)
	tok := apiToken(t, rig.dbURL, actor, "admin")
	base := "http://" + rig.r.APIAddr

	// / leads to the console, which, without a session, asks to log in.
	token := chromedp.CSS(`input[name="token"]`)
	browserStep(t, bctx, "open the console",
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(token))
	browserStep(t, bctx, "log in",
		chromedp.SendKeys(token, tok),
		chromedp.Submit(token),
		chromedp.WaitVisible(`//h1[starts-with(normalize-space(.), "Dashboard")]`))
	screenshot(t, bctx, "dashboard")
	if loc := browserRead(t, bctx, "read the location", chromedp.Location()); loc != base+"/console/" {
		t.Errorf("after login the browser is at %s, want %s/console/", loc, base)
	}
	if who := browserRead(t, bctx, "read who is logged in", chromedp.Text(chromedp.CSS(`header .who span`))); !strings.Contains(who, actor) || !strings.Contains(who, "admin") {
		t.Errorf("header says %q, want the token name %s and role admin", who, actor)
	}

	controlID := chromedp.CSS(`input[name="control_id"]`)
	link := fmt.Sprintf(`//table//a[text()=%q]`, cid)
	// The unfiltered list shows the message too: wait for the results
	// page (its form echoes the control ID in the value attribute, which
	// typing does not set), not for a link the old page already has and
	// the navigation is about to replace.
	searched := chromedp.CSS(fmt.Sprintf(`input[name="control_id"][value=%q]`, cid))
	browserStep(t, bctx, "find the message by control ID",
		chromedp.Click(`//nav/a[text()="Messages"]`),
		chromedp.WaitVisible(controlID),
		chromedp.SendKeys(controlID, cid),
		chromedp.Submit(controlID),
		chromedp.WaitVisible(searched),
		chromedp.WaitVisible(link))
	screenshot(t, bctx, "messages")
	if rows := browserRead(t, bctx, "count the results", chromedp.Evaluate[int](`document.querySelectorAll("main table tbody tr").length`)); rows != 1 {
		t.Errorf("search by control ID listed %d messages, want 1", rows)
	}

	reprocess := chromedp.CSS(`form.actions button`)
	browserStep(t, bctx, "open the message", chromedp.Click(link), chromedp.WaitVisible(reprocess))
	if title := browserRead(t, bctx, "read the title", chromedp.Text(chromedp.CSS(`main h1`))); !strings.Contains(title, cid) {
		t.Errorf("message page title %q, want the control ID %s", title, cid)
	}
	if segs := browserRead(t, bctx, "read the segment table", chromedp.Text(chromedp.CSS(`table.segments`))); !strings.Contains(segs, "Observation Value") || !strings.Contains(segs, "SCORETEST") {
		t.Errorf("the segment table lacks field names or values:\n%s", segs)
	}

	flash := chromedp.CSS(`p.flash`)
	browserStep(t, bctx, "reprocess it", chromedp.Click(reprocess), chromedp.WaitVisible(flash))
	screenshot(t, bctx, "message")
	if got := browserRead(t, bctx, "read the confirmation", chromedp.Text(flash)); !strings.Contains(got, "Queued for reprocessing") {
		t.Errorf("after Reprocess the page says %q, want the confirmation", got)
	}
	// Queued again (the audit records how many rows the outbox took) and
	// routed again by the running router.
	if n := count(t, rig.db, `SELECT count(*) FROM audit_log WHERE action = 'message.reprocess' AND actor = $1
			AND target = $2 AND (details->>'queued')::int = 1`, actor, msgID.String()); n != 1 {
		t.Errorf("%d message.reprocess audit rows by %s with one message queued, want 1", n, actor)
	}
	if n := count(t, rig.db, `SELECT count(*) FROM audit_log WHERE action = 'message.view_raw' AND actor = $1 AND target = $2`,
		actor, msgID.String()); n < 1 {
		t.Errorf("opening the message as admin did not audit the body read")
	}
	eventually(t, drainTimeout, "the router to route the reprocessed message", func() (bool, string) { return drained(t, rig.db) })

	ack := `//button[text()="Acknowledge"]`
	browserStep(t, bctx, "acknowledge the alert",
		chromedp.Click(`//nav/a[text()="Alerts"]`),
		chromedp.WaitVisible(ack),
		chromedp.Click(ack),
		chromedp.WaitVisible(flash))
	screenshot(t, bctx, "alerts")
	if got := browserRead(t, bctx, "read the confirmation", chromedp.Text(flash)); !strings.Contains(got, "Alert acknowledged") {
		t.Errorf("after Acknowledge the page says %q", got)
	}
	if table := browserRead(t, bctx, "read the alerts", chromedp.Text(chromedp.CSS(`main table tbody`))); !strings.Contains(table, actor) {
		t.Errorf("the alerts table does not show who acknowledged:\n%s", table)
	}
	var ackedBy string
	queryRow(t, rig.db, `SELECT coalesce(acknowledged_by, '') FROM alerts WHERE id = $1`, []any{alertID}, &ackedBy)
	if ackedBy != actor {
		t.Errorf("alert acknowledged_by %q, want %q", ackedBy, actor)
	}
	if n := count(t, rig.db, `SELECT count(*) FROM audit_log WHERE action = 'alert.acknowledge' AND actor = $1 AND target = $2`, actor, alertID); n != 1 {
		t.Errorf("%d alert.acknowledge audit rows by %s, want 1", n, actor)
	}

	// The live view: its script follows the console's event stream, which
	// starts from the latest events, the acknowledgement among them.
	browserStep(t, bctx, "follow live events",
		chromedp.Click(`//nav/a[text()="Live events"]`),
		chromedp.WaitVisible(`//table[@id="live"]//td[text()="alert.acknowledged"]`))
	screenshot(t, bctx, "events")

	browserStep(t, bctx, "log out",
		chromedp.Click(chromedp.CSS(`header .who button`)),
		chromedp.WaitVisible(token),
		chromedp.Navigate(base+"/console/alerts"),
		chromedp.WaitVisible(token))
	if n := count(t, rig.db, `SELECT count(*) FROM console_sessions`); n != 0 {
		t.Errorf("%d console sessions left after logout, want 0", n)
	}
	checkNoPHI(t, "router", rig.r.log, mrn, "SCORETEST")
}
