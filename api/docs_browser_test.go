package api_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestDocsInBrowser opens /v1/docs in headless Chromium (Debian's chromium package; make
// test installs it) and checks what a user sees: the page loads with no console error, no
// uncaught exception and no Content-Security-Policy violation; it lists every operation
// of /v1/schema; and "Try it out" on GET /v1/organizations/ answers 200 with each of the
// schemes of the Authorize dialog (Token typed into the dialog, JWT and Basic through
// Swagger UI's preauthorize calls). It also takes screenshots (AMRD_TEST_SCREENSHOTS=dir
// keeps them) to look at after a change of the page.
func TestDocsInBrowser(t *testing.T) {
	e := newEnv(t)
	var want []string
	for path, item := range e.served().Paths.Map() {
		for method := range item.Operations() {
			want = append(want, method+" "+path)
		}
	}
	slices.Sort(want)

	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	b := startChromium(t)
	tab := b.openTab(ctx, t)

	tab.navigate(ctx, e.base+"/v1/docs")
	// Swagger UI fetches the document, then renders every operation (collapsed).
	var page struct {
		Ops   [][2]string `json:"ops"`
		Error string      `json:"error"`
		Title string      `json:"title"`
	}
	tab.waitFor(ctx, "every operation rendered", `(() => {
		const ops = [...document.querySelectorAll(".opblock")].map(b => [
			b.querySelector(".opblock-summary-method")?.textContent ?? "",
			b.querySelector(".opblock-summary-path")?.dataset.path ?? ""]);
		const error = document.querySelector(".errors-wrapper")?.textContent ?? "";
		const title = document.querySelector(".info .title")?.textContent ?? "";
		return {ops, error, title, done: error !== "" || ops.length >= `+fmt.Sprint(len(want))+`};
	})()`, &page)
	require.Empty(t, page.Error, "Swagger UI shows an error")
	require.Contains(t, page.Title, "amrd API")
	var got []string
	for _, op := range page.Ops {
		got = append(got, op[0]+" "+op[1])
	}
	slices.Sort(got)
	require.Equal(t, want, got, "the page lists exactly the operations of /v1/schema, each once")
	tab.screenshot(ctx, "docs-top.png")
	tab.eval(ctx, `document.querySelector(".opblock-tag-section").scrollIntoView()`, nil)
	tab.screenshot(ctx, "docs-operations.png")

	// Descriptions are rendered Markdown: the document's "## Conventions" is a heading.
	var markdown struct {
		Heading bool `json:"heading"`
		Raw     bool `json:"raw"`
	}
	tab.eval(ctx, `({heading: [...document.querySelectorAll(".info .renderedMarkdown h2")].some(h => h.textContent === "Conventions"),
		raw: /\*\*\w|(^|\n)#{1,4} \w/.test(document.body.innerText)})`, &markdown)
	require.True(t, markdown.Heading, "the description's headings are rendered")
	require.False(t, markdown.Raw, "no raw Markdown on the page")

	// Open GET /v1/organizations/ and turn "Try it out" on.
	const opSel = `[...document.querySelectorAll(".opblock-get")].find(b => b.querySelector(".opblock-summary-path")?.dataset.path === "/v1/organizations/")`
	tab.eval(ctx, opSel+`.querySelector(".opblock-summary-control").click()`, nil)
	tab.waitFor(ctx, "the Try it out button", `({done: !!`+opSel+`.querySelector(".try-out__btn")})`, nil)
	tab.eval(ctx, opSel+`.querySelector(".try-out__btn").click()`, nil)
	tab.waitFor(ctx, "the Execute button", `({done: !!`+opSel+`.querySelector(".btn.execute")})`, nil)

	// execute clears the previous answer, executes, and returns the status and the curl
	// command Swagger UI shows.
	execute := func(scheme string) (status, curl string) {
		t.Helper()
		tab.eval(ctx, opSel+`.querySelector(".btn-clear")?.click()`, nil)
		tab.waitFor(ctx, "no answer shown", `({done: !`+opSel+`.querySelector(".live-responses-table")})`, nil)
		tab.eval(ctx, opSel+`.querySelector(".btn.execute").click()`, nil)
		var r struct {
			Status string `json:"status"`
			Curl   string `json:"curl"`
		}
		tab.waitFor(ctx, "the answer with "+scheme, `(() => {
			const op = `+opSel+`;
			const status = op.querySelector(".live-responses-table .response .response-col_status")?.textContent.trim() ?? "";
			const curl = op.querySelector(".curl-command .curl")?.textContent ?? "";
			return {status, curl, done: status !== ""};
		})()`, &r)
		return r.Status, r.Curl
	}

	require.Empty(t, b.problems(), "console errors, uncaught exceptions or CSP violations on loading /v1/docs")

	// Without credentials: 401, so the 200s below are the schemes' doing. Chromium logs
	// the 401 as an error, the one expected below.
	status, _ := execute("no credentials")
	require.Equal(t, "401", status)

	// Token, typed into the Authorize dialog as a user does.
	tab.eval(ctx, `document.querySelector(".auth-wrapper .btn.authorize").click()`, nil)
	const tokenForm = `[...document.querySelectorAll(".dialog-ux .auth-container")].find(c => c.querySelector("h4")?.textContent.startsWith("Token"))`
	tab.waitFor(ctx, "the Authorize dialog", `({done: !!`+tokenForm+`?.querySelector("input")})`, nil)
	tab.screenshot(ctx, "docs-authorize.png")
	tab.eval(ctx, tokenForm+`.querySelector("input").focus()`, nil)
	tab.call(ctx, "Input.insertText", map[string]any{"text": e.token()}, nil)
	tab.eval(ctx, tokenForm+`.querySelector("button[type=submit]").click()`, nil)
	tab.waitFor(ctx, "Token authorized", `({done: !!window.ui.authSelectors.authorized().get("Token")})`, nil)
	tab.eval(ctx, `document.querySelector(".dialog-ux .btn-done").click()`, nil)
	status, curl := execute("Token")
	require.Equal(t, "200", status)
	require.Contains(t, curl, "Authorization: "+e.token())
	tab.eval(ctx, opSel+`.querySelector(".live-responses-table").scrollIntoView()`, nil)
	tab.screenshot(ctx, "docs-try-it-out.png")

	jwt := strings.TrimPrefix(e.jwtFor(e.viewer, &e.orgA.ID), "JWT ")
	for _, s := range []struct{ name, js, header string }{
		{"JWT", `window.ui.preauthorizeApiKey("JWT", ` + jsString(jwt) + `)`, "Authorization: Bearer " + jwt},
		{"Basic", `window.ui.preauthorizeBasic("Basic", "viewer", ` + jsString(testPassword) + `)`, "Authorization: " + basic("viewer", testPassword)},
	} {
		tab.eval(ctx, `window.ui.authActions.logout(Object.keys(window.ui.authSelectors.authorized().toJS())); `+s.js, nil)
		status, curl := execute(s.name)
		require.Equal(t, "200", status, s.name)
		require.Contains(t, curl, s.header, s.name)
	}

	problems := b.problems()
	require.Len(t, problems, 1, "console errors, uncaught exceptions or CSP violations on /v1/docs: %q", problems)
	require.Contains(t, problems[0], "status of 401", "the one error is the call without credentials")
}

func jsString(s string) string {
	raw, _ := json.Marshal(s)
	return string(raw)
}

// chromium is a headless Chromium driven over the DevTools protocol on a pipe
// (--remote-debugging-pipe: JSON messages ended by NUL, commands on its fd 3, answers and
// events on its fd 4), which needs no port and no websocket.
type chromium struct {
	t      *testing.T
	out    string // where screenshots go
	stderr *lockedBuffer

	wmu sync.Mutex // one message at a time on the command pipe
	cmd *os.File

	mu      sync.Mutex
	nextID  int
	pending map[int]chan cdpMessage
	errs    []string // console errors, exceptions, CSP violations
}

type cdpMessage struct {
	ID        int             `json:"id,omitempty"`
	SessionID string          `json:"sessionId,omitempty"`
	Method    string          `json:"method,omitempty"`
	Params    json.RawMessage `json:"params,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
	Error     *struct {
		Message string `json:"message"`
	} `json:"error,omitempty"`
}

// startChromium starts Chromium for one test, stopped when the test ends. Missing
// Chromium fails the test: make test installs it (deploy/test.sh).
func startChromium(t *testing.T) *chromium {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	require.NoError(t, err, "Chromium is needed for the docs page's test: make test installs it (apt-get install chromium)")
	dir := t.TempDir()
	out := os.Getenv("AMRD_TEST_SCREENSHOTS")
	if out == "" {
		out = dir
	}
	// Nothing may reach the network: the host resolver answers only for the loopback
	// addresses the test server listens on, and background services are off.
	args := []string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
		"--no-first-run", "--no-default-browser-check", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--disable-extensions",
		"--disable-default-apps", "--disable-domain-reliability", "--metrics-recording-only",
		"--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
		"--user-data-dir=" + filepath.Join(dir, "profile"), "--remote-debugging-pipe", "about:blank",
	}
	cmdR, cmdW, err := os.Pipe()
	require.NoError(t, err)
	outR, outW, err := os.Pipe()
	require.NoError(t, err)
	proc := exec.Command(bin, args...)
	proc.ExtraFiles = []*os.File{cmdR, outW} // fds 3 and 4
	b := &chromium{t: t, out: out, stderr: &lockedBuffer{}, cmd: cmdW, pending: map[int]chan cdpMessage{}}
	proc.Stderr = b.stderr
	proc.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its helpers go with it
	require.NoError(t, proc.Start(), "starting %s", bin)
	cmdR.Close()
	outW.Close()

	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		b.read(outR)
	}()
	exited := make(chan struct{})
	go func() {
		_ = proc.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = b.send(ctx, "", "Browser.close", nil, nil)
		cmdW.Close()
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-proc.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		outR.Close()
		<-readDone
		if t.Failed() {
			t.Logf("chromium's stderr:\n%s", b.stderr)
		}
	})
	return b
}

// read delivers answers to their callers and records the problems that events report,
// until Chromium closes the pipe.
func (b *chromium) read(r *os.File) {
	br := bufio.NewReader(r)
	for {
		raw, err := br.ReadBytes(0)
		if err != nil {
			b.mu.Lock()
			for id, ch := range b.pending {
				close(ch)
				delete(b.pending, id)
			}
			b.mu.Unlock()
			return
		}
		var m cdpMessage
		if json.Unmarshal(raw[:len(raw)-1], &m) != nil {
			continue
		}
		if m.ID != 0 {
			b.mu.Lock()
			ch := b.pending[m.ID]
			delete(b.pending, m.ID)
			b.mu.Unlock()
			if ch != nil {
				ch <- m
			}
			continue
		}
		if p := problem(m); p != "" {
			b.mu.Lock()
			b.errs = append(b.errs, p)
			b.mu.Unlock()
		}
	}
}

// problem is what an event reports that a user would see as an error, or "".
func problem(m cdpMessage) string {
	switch m.Method {
	case "Runtime.consoleAPICalled":
		var p struct {
			Type string `json:"type"`
			Args []struct {
				Value       any    `json:"value"`
				Description string `json:"description"`
			} `json:"args"`
		}
		_ = json.Unmarshal(m.Params, &p)
		if p.Type != "error" && p.Type != "assert" {
			return ""
		}
		var parts []string
		for _, a := range p.Args {
			if a.Value != nil {
				parts = append(parts, fmt.Sprint(a.Value))
			} else {
				parts = append(parts, a.Description)
			}
		}
		return "console." + p.Type + ": " + strings.Join(parts, " ")
	case "Runtime.exceptionThrown":
		var p struct {
			ExceptionDetails struct {
				Text      string `json:"text"`
				Exception struct {
					Description string `json:"description"`
				} `json:"exception"`
			} `json:"exceptionDetails"`
		}
		_ = json.Unmarshal(m.Params, &p)
		return "exception: " + p.ExceptionDetails.Text + " " + p.ExceptionDetails.Exception.Description
	case "Log.entryAdded":
		var p struct {
			Entry struct {
				Level, Source, Text, URL string
			} `json:"entry"`
		}
		_ = json.Unmarshal(m.Params, &p)
		if p.Entry.Level != "error" {
			return ""
		}
		return "log (" + p.Entry.Source + "): " + p.Entry.Text + " " + p.Entry.URL
	}
	return ""
}

func (b *chromium) problems() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.errs)
}

// send sends one command (to the browser, or to a page's session) and decodes its result.
func (b *chromium) send(ctx context.Context, session, method string, params, result any) error {
	b.mu.Lock()
	b.nextID++
	id := b.nextID
	ch := make(chan cdpMessage, 1)
	b.pending[id] = ch
	b.mu.Unlock()
	msg := map[string]any{"id": id, "method": method, "params": params}
	if session != "" {
		msg["sessionId"] = session
	}
	raw, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	b.wmu.Lock()
	_, err = b.cmd.Write(append(raw, 0))
	b.wmu.Unlock()
	if err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	select {
	case m, ok := <-ch:
		if !ok {
			return fmt.Errorf("%s: chromium closed the pipe", method)
		}
		if m.Error != nil {
			return fmt.Errorf("%s: %s", method, m.Error.Message)
		}
		if result != nil {
			return json.Unmarshal(m.Result, result)
		}
		return nil
	case <-ctx.Done():
		b.mu.Lock()
		delete(b.pending, id)
		b.mu.Unlock()
		return fmt.Errorf("%s: %w", method, ctx.Err())
	}
}

// tab is a page of the browser.
type tab struct {
	b       *chromium
	session string
}

// openTab opens a 1280x900 page that reports console messages, exceptions, log entries
// and Content-Security-Policy violations.
func (b *chromium) openTab(ctx context.Context, t *testing.T) *tab {
	t.Helper()
	var target struct {
		TargetID string `json:"targetId"`
	}
	require.NoError(t, b.send(ctx, "", "Target.createTarget", map[string]any{"url": "about:blank"}, &target))
	var att struct {
		SessionID string `json:"sessionId"`
	}
	require.NoError(t, b.send(ctx, "", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &att))
	tb := &tab{b: b, session: att.SessionID}
	for _, m := range []string{"Runtime.enable", "Log.enable", "Page.enable"} {
		tb.call(ctx, m, nil, nil)
	}
	tb.call(ctx, "Emulation.setDeviceMetricsOverride", map[string]any{"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": false}, nil)
	// Injected by DevTools, so the page's policy does not apply to this listener itself.
	tb.call(ctx, "Page.addScriptToEvaluateOnNewDocument", map[string]any{"source": `document.addEventListener("securitypolicyviolation",
		e => console.error("CSP violation: " + e.violatedDirective + " blocked " + e.blockedURI + " at " + e.sourceFile + ":" + e.lineNumber));`}, nil)
	return tb
}

func (tb *tab) call(ctx context.Context, method string, params, result any) {
	tb.b.t.Helper()
	require.NoError(tb.b.t, tb.b.send(ctx, tb.session, method, params, result))
}

func (tb *tab) navigate(ctx context.Context, url string) {
	tb.b.t.Helper()
	var r struct {
		ErrorText string `json:"errorText"`
	}
	tb.call(ctx, "Page.navigate", map[string]any{"url": url}, &r)
	require.Empty(tb.b.t, r.ErrorText, "navigating to %s", url)
}

// eval runs a JavaScript expression in the page and decodes its value into out (if not
// nil); an exception fails the test.
func (tb *tab) eval(ctx context.Context, expr string, out any) {
	tb.b.t.Helper()
	if err := tb.evalErr(ctx, expr, out); err != nil {
		tb.b.t.Fatal(err)
	}
}

func (tb *tab) evalErr(ctx context.Context, expr string, out any) error {
	var r struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	err := tb.b.send(ctx, tb.session, "Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true, "awaitPromise": true}, &r)
	if err != nil {
		return err
	}
	if d := r.ExceptionDetails; d != nil {
		return fmt.Errorf("evaluating %s: %s %s", expr, d.Text, d.Exception.Description)
	}
	if out != nil && len(r.Result.Value) > 0 {
		return json.Unmarshal(r.Result.Value, out)
	}
	return nil
}

// waitFor evaluates expr, which answers an object with "done", until done is true, then
// decodes that object into out (if not nil). Its name says what was awaited in a failure.
func (tb *tab) waitFor(ctx context.Context, name, expr string, out any) {
	tb.b.t.Helper()
	var last json.RawMessage
	for {
		var v struct {
			Done bool `json:"done"`
		}
		err := tb.evalErr(ctx, expr, &last)
		if err == nil {
			err = json.Unmarshal(last, &v)
		}
		if err == nil && v.Done {
			if out != nil {
				require.NoError(tb.b.t, json.Unmarshal(last, out))
			}
			return
		}
		select {
		case <-ctx.Done():
			tb.screenshot(context.Background(), "failed.png")
			tb.b.t.Fatalf("waiting for %s: %v (last: %s, err: %v); problems: %v", name, ctx.Err(), last, err, tb.b.problems())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// screenshot saves the visible part of the page as name in the screenshot directory.
func (tb *tab) screenshot(ctx context.Context, name string) {
	tb.b.t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var r struct {
		Data string `json:"data"`
	}
	if err := tb.b.send(ctx, tb.session, "Page.captureScreenshot", map[string]any{"format": "png"}, &r); err != nil {
		tb.b.t.Logf("screenshot %s: %v", name, err)
		return
	}
	png, err := base64.StdEncoding.DecodeString(r.Data)
	if err == nil {
		err = os.WriteFile(filepath.Join(tb.b.out, name), png, 0o644)
	}
	if err != nil {
		tb.b.t.Logf("screenshot %s: %v", name, err)
		return
	}
	tb.b.t.Logf("screenshot: %s", filepath.Join(tb.b.out, name))
}
