package observe

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/sluicehq/sluice/internal/natstest"
)

// browserWait bounds each wait on what the page shows.
const browserWait = 30 * time.Second

// findChromium returns the path of a Chromium or Chrome on PATH, or skips
// the test.
func findChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	t.Skip("no chromium, chromium-browser or google-chrome on PATH: the status page's browser test is skipped " +
		"(install one to run it, on Debian or Ubuntu: apt-get install chromium)")
	return ""
}

// browser starts a headless Chromium for the test and returns its
// context; each [tab] of it is a fresh page with its own session storage.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]),
		chromedp.ExecPath(findChromium(t)),
		chromedp.Flag("disable-dev-shm-usage", true),
	)
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // Chromium refuses to sandbox as root
	}
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, bcancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		bcancel()
		acancel()
	})
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("start %s: %v", findChromium(t), err)
	}
	return bctx
}

// pageTab is a tab of the browser and what its page logged.
type pageTab struct {
	ctx  context.Context
	mu   sync.Mutex
	logs []string
}

func (pt *pageTab) add(line string) {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	pt.logs = append(pt.logs, line)
}

// tab opens url in a new tab of the browser. At cleanup it logs what the
// page logged, and fails the test if the page threw or broke its
// Content-Security-Policy (which Chromium logs from source "security").
func tab(t *testing.T, browser context.Context, url string) *pageTab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser)
	if err := chromedp.Do(ctx); err != nil { // opens the tab, without a timeout
		cancel()
		t.Fatalf("open a tab: %v", err)
	}
	pt := &pageTab{ctx: ctx}
	entries := chromedp.Events(ctx, log.EntryAdded)
	exceptions := chromedp.Events(ctx, runtime.ExceptionThrown)
	var wg sync.WaitGroup
	wg.Go(func() {
		for ev, err := range entries {
			if err != nil {
				return
			}
			pt.add(fmt.Sprintf("%s %s: %s", ev.Entry.Level, ev.Entry.Source, ev.Entry.Text))
		}
	})
	wg.Go(func() {
		for ev, err := range exceptions {
			if err != nil {
				return
			}
			pt.add((&chromedp.ExceptionError{ExceptionDetails: ev.ExceptionDetails}).Error())
		}
	})
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		pt.mu.Lock()
		defer pt.mu.Unlock()
		for _, l := range pt.logs {
			t.Logf("page: %s", l)
			if strings.HasPrefix(l, "exception") || strings.Contains(l, "Content Security Policy") {
				t.Errorf("the page threw or broke its policy: %s", l)
			}
		}
	})
	nctx, ncancel := context.WithTimeout(ctx, browserWait)
	defer ncancel()
	if err := chromedp.Do(nctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	return pt
}

// eval evaluates expr in the tab's page.
func eval[T any](t *testing.T, pt *pageTab, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(pt.ctx, browserWait)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// number returns the data-value of the cell of field for stage of
// pipeline in the page's table, -1 if it has none.
func (pt *pageTab) number(t *testing.T, pipeline, stage, field string) float64 {
	t.Helper()
	return eval[float64](t, pt, fmt.Sprintf(`(() => {
		const td = document.querySelector('section[data-pipeline=%q] tr[data-stage=%q] td[data-field=%q]');
		return td && td.dataset.value !== "" ? Number(td.dataset.value) : -1;
	})()`, pipeline, stage, field))
}

// text returns the text of the first element selector finds, "" if none.
func (pt *pageTab) text(t *testing.T, selector string) string {
	t.Helper()
	return eval[string](t, pt, fmt.Sprintf(`(() => { const e = document.querySelector(%q); return e ? e.textContent : ""; })()`, selector))
}

const livePipeline = `
name: live
stages:
  - name: gen
    source: generate
    with: {rate: 40, template: '{"n": seq}'}
  - name: even
    transform: filter
    with: {expr: 'n % 2 == 0'}
  - name: out
    sink: discard
`

// TestStatusPageInBrowser opens the status page in headless Chromium
// while a slow generate source runs, and a pipeline whose sink is held:
// with the token in the fragment it draws the stages, its numbers move
// and the held sink is marked; without it, it says it is unauthorized.
func TestStatusPageInBrowser(t *testing.T) {
	b := browser(t)
	const token = "s3cret"
	s, base := serve(t, Options{Token: token, Pipelines: []string{"live", "down"}})
	run := startRun(t, s, livePipeline)
	startRun(t, s, fmt.Sprintf(heldPipeline, natstest.FreePort(t)))

	pt := tab(t, b, base+"/#token="+token)
	natstest.WaitFor(t, browserWait, "the page to draw the stages of the running pipeline", func() bool {
		names := eval[[]string](t, pt, `Array.from(document.querySelectorAll('section[data-pipeline="live"] tr[data-stage]')).map(r => r.dataset.stage)`)
		return slices.Equal(names, []string{"gen", "even", "out"})
	})
	graph := eval[struct{ Nodes, Edges int }](t, pt, `({Nodes: document.querySelectorAll('section[data-pipeline="live"] svg.graph g.node').length, Edges: document.querySelectorAll('section[data-pipeline="live"] svg.graph path.edge').length})`)
	if graph.Nodes != 3 || graph.Edges != 2 {
		t.Errorf("graph: %d nodes, %d edges; want 3 and 2", graph.Nodes, graph.Edges)
	}
	if display := eval[string](t, pt, `getComputedStyle(document.querySelector("header")).display`); display != "flex" {
		t.Errorf("header display %q, want flex: the page's style did not apply", display)
	}
	if got := pt.text(t, "#status"); got != "live" {
		t.Errorf("status line %q, want live", got)
	}
	if hash := eval[string](t, pt, `location.hash`); hash != "" {
		t.Errorf("the token stays in the address: %q", hash)
	}

	var first float64
	natstest.WaitFor(t, browserWait, "the page to show records reaching the sink", func() bool {
		first = pt.number(t, "live", "out", "in")
		return first > 0
	})
	natstest.WaitFor(t, browserWait, "the sink's count on the page to move", func() bool {
		return pt.number(t, "live", "out", "in") > first
	})
	natstest.WaitFor(t, browserWait, "the page to show a rate for the source", func() bool {
		return pt.number(t, "live", "gen", "rate") > 0
	})
	if filtered := pt.number(t, "live", "even", "filtered"); filtered <= 0 {
		t.Errorf("even: filtered %v on the page, want some", filtered)
	}
	if pending := pt.number(t, "live", "out", "pending"); pending < 0 {
		t.Errorf("out: pending %v on the page, want a number", pending)
	}
	if got := pt.text(t, `section[data-pipeline="live"] .state`); got != "running" {
		t.Errorf("pipeline state %q on the page, want running", got)
	}

	natstest.WaitFor(t, browserWait, "the page to mark the held sink", func() bool {
		return eval[bool](t, pt, `!!document.querySelector('section[data-pipeline="down"] g.node.held[data-stage="post"]')`) &&
			pt.text(t, `section[data-pipeline="down"] tr[data-stage="post"] td[data-field="held"]`) == "held now"
	})
	if held := eval[bool](t, pt, `!!document.querySelector('section[data-pipeline="live"] g.node.held')`); held {
		t.Error("a stage of the live pipeline is marked held")
	}

	anon := tab(t, b, base+"/")
	natstest.WaitFor(t, browserWait, "the page without the token to say it is unauthorized", func() bool {
		return strings.HasPrefix(anon.text(t, "#status"), "unauthorized")
	})
	if n := anon.number(t, "live", "gen", "in"); n != -1 {
		t.Errorf("the page without the token shows counts (gen in %v)", n)
	}

	select {
	case err := <-run:
		t.Fatalf("the run ended early: %v", err)
	default:
	}
}
