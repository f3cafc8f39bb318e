package integration

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/posterctl/posterctl/internal/clitest"
)

// screenshotEnv names a file to save a screenshot of the page to, e.g.
// POSTERCTL_SCREENSHOT=$PWD/docs/poster.png.
const screenshotEnv = "POSTERCTL_SCREENSHOT"

// TestBrowser drives the page in Debian's headless chromium the way a
// person would: register, log out, log in, post an HTML payload and see it
// as text, reload and still be logged in, log out.
func TestBrowser(t *testing.T) {
	clitest.RequireChromium(t)
	b := startBackend(t, dbPath(t), "backend-browser")

	ctx, cancelTab := clitest.Browser(t, 90*time.Second, 900, 1000)

	do := func(step string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			t.Fatalf("%s: %v\nbackend output:\n%s", step, err, b.Output())
		}
	}
	text := func(sel string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return v
	}
	ready := func(step string) {
		t.Helper()
		do(step, chromedp.WaitReady(chromedp.CSS(`body[data-ready="true"]`)))
	}

	// Start the browser, then watch for dialogs: an executed payload would
	// open one. The watcher accepts it so the page does not hang, and the
	// test fails at the end.
	do("start browser", chromedp.Navigate("about:blank"))
	var (
		mu      sync.Mutex
		dialogs []string
		watch   sync.WaitGroup
	)
	dialogEvents := chromedp.Events(ctx, page.JavascriptDialogOpening)
	watchCtx, stopWatch := context.WithCancel(ctx)
	watch.Go(func() {
		for ev, err := range dialogEvents {
			if err != nil || watchCtx.Err() != nil {
				return
			}
			mu.Lock()
			dialogs = append(dialogs, ev.Message)
			mu.Unlock()
			chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	})
	defer func() {
		stopWatch()
		cancelTab()
		watch.Wait()
	}()

	do("open page", chromedp.Navigate(b.url+"/"))
	ready("page ready")
	do("see login form", chromedp.WaitVisible(chromedp.ID("auth")))

	// Register (which logs in), then log out and log in again by hand.
	const user, password = "browser_user", "browser-pass-1"
	do("register",
		chromedp.Click(chromedp.ID("tab-register")),
		chromedp.SendKeys(chromedp.ID("username"), user),
		chromedp.SendKeys(chromedp.ID("password"), password),
		chromedp.Click(chromedp.ID("auth-submit")),
		chromedp.WaitVisible(chromedp.ID("composer")),
	)
	if got := text("#me"); got != user {
		t.Fatalf("signed in as %q, want %q", got, user)
	}
	do("log out", chromedp.Click(chromedp.ID("logout")), chromedp.WaitVisible(chromedp.ID("auth")))
	do("log in",
		chromedp.Evaluate[chromedp.Void](`document.getElementById("auth-form").reset()`),
		chromedp.SendKeys(chromedp.ID("username"), user),
		chromedp.SendKeys(chromedp.ID("password"), password),
		chromedp.Click(chromedp.ID("auth-submit")),
		chromedp.WaitVisible(chromedp.ID("composer")),
	)

	// Post an HTML payload; it must show as text.
	const payload = `<img src=x onerror=alert(1)>`
	do("type post", chromedp.SendKeys(chromedp.ID("content"), payload))
	if got, want := text("#count"), fmt.Sprintf("%d / 500", utf8.RuneCountInString(payload)); got != want {
		t.Fatalf("character count %q, want %q", got, want)
	}
	do("post", chromedp.Click(chromedp.ID("post-btn")))
	shown := func(step string) {
		t.Helper()
		got, err := chromedp.Run(ctx, chromedp.Poll[string](
			`(document.querySelector("#posts .post .post-content") || {}).textContent`,
			chromedp.WithPollingTimeout(15*time.Second)))
		if err != nil {
			t.Fatalf("%s: post not shown: %v", step, err)
		}
		if got != payload {
			t.Fatalf("%s: post shows %q, want the text %q", step, got, payload)
		}
		imgs, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#posts img").length`))
		if err != nil || imgs != 0 {
			t.Fatalf("%s: %d <img> elements in the posts (err %v): the payload was rendered as HTML", step, imgs, err)
		}
	}
	shown("after posting")
	if got := text("#backend"); got != b.name {
		t.Fatalf("page says the last request was served by %q, want %q", got, b.name)
	}
	if got := text("#count"); got != "0 / 500" {
		t.Fatalf("count after posting %q", got)
	}

	// Reload: still logged in, the post is still text.
	do("reload", chromedp.Reload())
	ready("ready after reload")
	do("still logged in", chromedp.WaitVisible(chromedp.ID("composer")))
	if got := text("#me"); got != user {
		t.Fatalf("after reload signed in as %q", got)
	}
	shown("after reload")

	if path := os.Getenv(screenshotEnv); path != "" {
		saveScreenshot(t, ctx, b, path)
	}

	// Log out: the session ends on the server, and a reload shows the form.
	do("log out at the end", chromedp.Click(chromedp.ID("logout")), chromedp.WaitVisible(chromedp.ID("auth")))
	status, err := chromedp.Run(ctx, chromedp.Evaluate[int](`fetch("/api/user").then(r => r.status)`, chromedp.EvalAwaitPromise))
	if err != nil || status != http.StatusUnauthorized {
		t.Fatalf("GET /api/user after logout = %d (err %v), want 401", status, err)
	}
	do("reload logged out", chromedp.Reload())
	ready("ready logged out")
	do("login form after reload", chromedp.WaitVisible(chromedp.ID("auth")))

	mu.Lock()
	defer mu.Unlock()
	if len(dialogs) > 0 {
		t.Fatalf("the page opened dialogs %q: user text ran as script", dialogs)
	}
}

// saveScreenshot fills the board with a few posts by other people and saves
// a picture of the page, for the README.
func saveScreenshot(t *testing.T, ctx context.Context, b *backend, path string) {
	hc := newHTTPClient(1)
	defer hc.CloseIdleConnections()
	for _, p := range []struct{ user, text string }{
		{"ada", "Two backends, one SQLite file: log in on one, post on the other."},
		{"grace_h", "Tip: the badge at the bottom right shows which backend answered your last request."},
		{"linus_t", "Ctrl+Enter posts from the text box."},
	} {
		c := &client{tb: t, hc: hc}
		c.registerAndLogin(b.url, p.user, "screenshot-pass")
		c.must("POST", b.url+"/api/posts", map[string]string{"content": p.text}, http.StatusCreated)
	}
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.ID("refresh")),
		chromedp.WaitVisible(chromedp.CSS(`#posts li:nth-child(4)`)),
		chromedp.SendKeys(chromedp.ID("content"), "Hello from the browser test!"),
		// The button fades in when enabled; shoot once it is opaque.
		chromedp.Poll[chromedp.Void](`getComputedStyle(document.getElementById("post-btn")).opacity === "1"`),
	); err != nil {
		t.Fatalf("prepare screenshot: %v", err)
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot saved to %s", path)
}
