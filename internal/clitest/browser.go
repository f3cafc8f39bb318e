package clitest

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// ChromiumPath is Debian's chromium, which the browser tests drive; .ci/run
// installs it.
const ChromiumPath = "/usr/bin/chromium"

// E2EEnv set to 1 (as `make e2e` does) turns a missing chromium from a skip
// into a failure.
const E2EEnv = "POSTERCTL_E2E"

// RequireChromium skips the test, with a message that says why, when
// chromium is not installed, and fails it instead under POSTERCTL_E2E=1.
func RequireChromium(tb testing.TB) {
	tb.Helper()
	if _, err := os.Stat(ChromiumPath); err != nil {
		if os.Getenv(E2EEnv) == "1" {
			tb.Fatalf("%s=1 but chromium is missing: %v", E2EEnv, err)
		}
		tb.Skipf("SKIPPED: browser test needs chromium at %s (apt-get install chromium); `make e2e` fails instead of skipping", ChromiumPath)
	}
}

// Browser starts headless chromium with a fresh profile and returns the
// context of one tab and a function that closes the browser (ending the tab's
// event streams). The browser is also closed when the test ends or timeout
// passes. The flags keep chromium, run as root on a machine without
// internet, from sandboxing and from reaching out to hosts it cannot reach.
func Browser(tb testing.TB, timeout time.Duration, width, height int) (context.Context, context.CancelFunc) {
	tb.Helper()
	RequireChromium(tb)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(ChromiumPath),
		chromedp.NoSandbox,
		chromedp.Headless,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(tb.TempDir()),
		chromedp.WindowSize(width, height),
	)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	tabCtx, cancelTab := chromedp.NewContext(actx)
	closeBrowser := func() {
		cancelTab()
		cancelAlloc()
		cancel()
	}
	tb.Cleanup(closeBrowser)
	return tabCtx, closeBrowser
}
