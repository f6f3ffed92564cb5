// The audit page in headless Chromium (Debian's chromium, driven by playwright-core), against a live reflex
// that has remediated a moto fleet and holds a decision for approval (HELD, on HELD_INSTANCE). Run by
// scripts/check-ui with BASE, TOKEN, TARGET, OUT, APPROVER, HELD and HELD_INSTANCE set.
import assert from "node:assert/strict";
import crypto from "node:crypto";
import { createRequire } from "node:module";

const require = createRequire(process.env.PLAYWRIGHT_DIR + "/");
const { chromium } = require("playwright-core");
const { BASE, TOKEN, TARGET, OUT, APPROVER, HELD, HELD_INSTANCE } = process.env;

const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] });
const context = await browser.newContext();
const page = await context.newPage();
const requested = [];
page.on("request", (request) => requested.push(request.url()));
const step = (name) => console.log(`ui: ${name}`);

// Unauthenticated: redirected to the form, which carries a CSRF token; the CSP allows nothing foreign.
let response = await page.goto(`${BASE}/ui/`);
assert.equal(new URL(page.url()).pathname, "/ui/login");
const csp = response.headers()["content-security-policy"];
assert.match(csp, /default-src 'none'/);
assert.doesNotMatch(csp, /script-src/);
const csrf = await page.inputValue('input[name="csrf"]');
assert.ok(csrf.length > 40, "the login form has a CSRF token");
step("unauthenticated requests go to the login form");

// A wrong token is refused; a login without the form's CSRF token is refused too.
await page.fill('input[name="token"]', "not-the-token-0123456789");
response = await Promise.all([page.waitForNavigation(), page.click('button[type="submit"]')]).then(([r]) => r);
assert.equal(response.status(), 401);
assert.match(await page.textContent("[role=alert]"), /not accepted/);
const forged = await context.request.post(`${BASE}/ui/login`, {
  form: { token: TOKEN, csrf: "1.00" },
  maxRedirects: 0,
});
assert.equal(forged.status(), 403, "a login without a valid CSRF token is refused");
step("a wrong token and a missing CSRF token are refused");

// The right token: a session cookie with the flags, and the timeline.
await page.goto(`${BASE}/ui/login`);
await page.fill('input[name="token"]', TOKEN);
await Promise.all([page.waitForNavigation(), page.click('button[type="submit"]')]);
assert.equal(new URL(page.url()).pathname, "/ui/");
const session = (await context.cookies()).find((c) => c.name === "reflex_session");
assert.ok(session, "a session cookie is set");
assert.equal(session.httpOnly, true);
assert.equal(session.sameSite, "Strict");
const hours = (session.expires - Date.now() / 1000) / 3600;
assert.ok(hours > 7 && hours <= 8, `the session expires in 8 hours, not ${hours}`);
step("login sets an HttpOnly, SameSite=Strict session cookie that expires");

// The timeline shows the remediation; its run page shows the skipped instance and why.
const row = page.locator("table.timeline tbody tr", { hasText: TARGET }).filter({ hasText: "manual" }).first();
await row.waitFor();
assert.match(await row.textContent(), /completed/);
await page.screenshot({ path: `${OUT}/timeline-light.png`, fullPage: true });
await page.emulateMedia({ colorScheme: "dark" });
await page.screenshot({ path: `${OUT}/timeline-dark.png`, fullPage: true });
const background = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
assert.equal(background, "rgb(18, 18, 18)", "dark mode follows prefers-color-scheme");
await page.emulateMedia({ colorScheme: "light" });
await Promise.all([page.waitForNavigation(), row.locator("a").first().click()]);
assert.match(new URL(page.url()).pathname, /^\/ui\/runs\//);
const plan = await page.textContent("main");
assert.match(plan, /skipped: the per-run cap was reached \(cap-reached\)/);
assert.match(plan, /replace: terminate/);
assert.match(plan, /shutting-down/);
assert.match(plan, /Raw audit record/);
await page.screenshot({ path: `${OUT}/run-light.png`, fullPage: true });
await page.emulateMedia({ colorScheme: "dark" });
await page.screenshot({ path: `${OUT}/run-dark.png`, fullPage: true });
await page.emulateMedia({ colorScheme: "light" });
step("the timeline shows the run, and the run page its plan with the skipped instance's reason");

// WCAG AA contrast (4.5:1) for every text colour in use, light and dark.
const contrast = () =>
  page.evaluate(() => {
    const rgb = (css) => (css.match(/\d+(\.\d+)?/g) || []).slice(0, 4).map(Number);
    const lum = ([r, g, b]) => {
      const c = [r, g, b].map((v) => {
        v /= 255;
        return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
      });
      return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
    };
    const ratio = (a, b) => {
      const [x, y] = [lum(a), lum(b)].sort((m, n) => n - m);
      return (x + 0.05) / (y + 0.05);
    };
    // The nearest ancestor's background that is not transparent.
    const background = (el) => {
      for (let up = el; up; up = up.parentElement) {
        const bg = getComputedStyle(up).backgroundColor;
        if (bg !== "rgba(0, 0, 0, 0)" && bg !== "transparent") return rgb(bg);
      }
      return [255, 255, 255];
    };
    return [...document.querySelectorAll("body *")]
      .filter((el) => [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim()))
      .map((el) => [`${el.tagName}.${el.className}: ${el.textContent.trim().slice(0, 30)}`, ratio(rgb(getComputedStyle(el).color), background(el))])
      .filter(([, r]) => r < 4.5);
  });
const runPage = page.url();
for (const scheme of ["light", "dark"]) {
  await page.emulateMedia({ colorScheme: scheme });
  for (const address of [`${BASE}/ui/`, runPage]) {
    await page.goto(address);
    assert.deepEqual(await contrast(), [], `text below 4.5:1 in ${scheme} mode on ${address}`);
  }
}
await page.emulateMedia({ colorScheme: "light" });
step("every text colour has at least 4.5:1 contrast, light and dark");

// On a phone: no horizontal scrolling; the timeline's rows become cards.
await page.setViewportSize({ width: 390, height: 844 });
await page.goto(`${BASE}/ui/`);
assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), "no horizontal scroll");
assert.equal(await page.evaluate(() => getComputedStyle(document.querySelector("table.timeline td")).display), "flex");
await page.screenshot({ path: `${OUT}/timeline-phone.png`, fullPage: true });
await page.setViewportSize({ width: 1280, height: 720 });
step("on a phone the page fits the screen and rows become cards");

// Filters: by source, by outcome, by target, by time.
const rows = async (query) => {
  await page.goto(`${BASE}/ui/?${query}`);
  return page.locator("table.timeline tbody tr").count();
};
assert.ok((await rows("source=manual")) >= 1);
assert.equal(await rows("source=grafana"), 0);
assert.ok((await rows(`target=${TARGET}&outcome=completed`)) >= 1);
assert.equal(await rows("target=no-such-target"), 0);
assert.ok((await rows(`target=${TARGET}&account=local&region=us-east-1`)) >= 1);
assert.ok((await rows(`target=${TARGET}&account=123456789012`)) >= 1);
assert.equal(await rows(`target=${TARGET}&region=eu-west-1`), 0);
assert.equal(await rows(`target=${TARGET}&account=222233334444`), 0);
assert.equal(await rows("from=2001-01-01T00:00&to=2001-01-02T00:00"), 0);
assert.ok((await rows("from=2001-01-01T00:00")) >= 1);
const sources = async (query) => {
  await page.goto(`${BASE}/ui/?${query}`);
  return page.locator('table.timeline td[data-label="Source"]').allTextContents();
};
assert.ok(!(await sources("")).includes("audit-read"), "the default timeline shows runs, not logins");
assert.ok((await sources("access=on")).includes("audit-read"), "the access filter shows the logins");
assert.ok((await sources("source=audit-read")).includes("audit-read"), "as does their source");
step("filters by source, outcome, target, account, region and time range work; logins only when asked");

// A target's page: its health as a chart whose marks link to the runs that acted, with a text alternative.
await page.goto(`${BASE}/ui/`);
await Promise.all([page.waitForNavigation(), page.locator("table a", { hasText: TARGET }).first().click()]);
assert.match(new URL(page.url()).pathname, /^\/ui\/targets\//);
assert.equal(await page.textContent("svg title#health-title"), `Health of ${TARGET}`);
assert.match(await page.textContent("svg desc"), /1 readings? from .* the last saw 3 InService and 2 not InService; 1 runs acted/);
const mark = page.locator('svg a[href^="/ui/runs/"]');
assert.equal(await mark.count(), 1, "the run that acted is marked");
assert.match(await page.locator("details table").first().textContent(), /3.*2.*1/s);
// Its state, what it did by outcome, its budget use and its last episode.
const state = await page.textContent("dl.panel");
assert.match(state, /Ladder\s*replace/);
assert.match(state, /Breaker\s*closed/);
assert.equal(await page.textContent("svg title#runs-title"), `Runs per hour of ${TARGET}, by outcome`);
assert.match(await page.textContent("svg desc#runs-desc"), /1 acted, 0 refused by a rule, 0 held for approval/);
assert.equal(await page.locator("svg rect.run.acted").count(), 1);
assert.match(await page.textContent("svg desc#budget-desc"), /this target, last hour: 1 of 5/);
const episode = page.locator("ol.episode li").first();
assert.match(await episode.textContent(), /replace/);
await page.screenshot({ path: `${OUT}/target-light.png`, fullPage: true });
await page.emulateMedia({ colorScheme: "dark" });
await page.screenshot({ path: `${OUT}/target-dark.png`, fullPage: true });
await page.emulateMedia({ colorScheme: "light" });
await page.setViewportSize({ width: 390, height: 844 });
await page.reload();
assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), "no horizontal scroll");
await page.screenshot({ path: `${OUT}/target-phone.png`, fullPage: true });
await page.setViewportSize({ width: 1280, height: 720 });
await page.emulateMedia({ colorScheme: "dark" });
for (const scheme of ["dark", "light"]) {
  await page.emulateMedia({ colorScheme: scheme });
  assert.deepEqual(await contrast(), [], `text below 4.5:1 in ${scheme} mode on the target page`);
}
await Promise.all([page.waitForNavigation(), page.click("text=last 7 days")]);
assert.match(page.url(), /range=7d/);
const markHref = await page.locator('svg a[href^="/ui/runs/"]').getAttribute("href");
await Promise.all([page.waitForNavigation(), page.goto(`${BASE}${markHref}`)]);
assert.match(await page.textContent("main"), /replace: terminate/);
step("a target's page charts its health, runs and budget use, with its state and episodes; the mark of the run that acted links to it");
await page.goto(`${BASE}/ui/`);
assert.equal(await page.textContent("svg title#runs-title"), "Runs per hour of every target, by outcome");
assert.match(await page.textContent("svg desc#runs-desc"), /[1-9]\d* acted/);
step("the timeline charts every target's runs per hour");

// An audit token's session sees a held decision's evidence, without the buttons.
await page.goto(`${BASE}/ui/approvals/${HELD}`);
assert.match(await page.textContent("main"), /OutOfService/);
assert.equal(await page.locator("button.approve").count(), 0, "no Approve button for an audit token");
step("an audit session sees a held decision, and no buttons");

// Keyboard: the filter form and the links are reachable with Tab.
await page.goto(`${BASE}/ui/`);
await page.keyboard.press("Tab");
const focused = await page.evaluate(() => document.activeElement.tagName);
assert.ok(["A", "BUTTON", "INPUT", "SELECT"].includes(focused), `Tab reaches ${focused}`);

// Logout ends the session, in the store: the cookie's old value, put back, opens nothing.
const before = (await context.cookies()).find((cookie) => cookie.name === "reflex_session");
await Promise.all([page.waitForNavigation(), page.click('header button[type="submit"]')]);
assert.equal(new URL(page.url()).pathname, "/ui/login");
await page.goto(`${BASE}/ui/`);
assert.equal(new URL(page.url()).pathname, "/ui/login");
await context.addCookies([{ ...before }]);
await page.goto(`${BASE}/ui/`);
assert.equal(new URL(page.url()).pathname, "/ui/login", "the ended session's cookie is refused");
step("logout ends the session, and its cookie replayed is refused");

// A forged or expired session cookie is redirected to the form.
const sign = (expires) => {
  const key = crypto.createHmac("sha256", "reflex audit page sessions").update(`${TOKEN}\n`).digest();
  return `${expires}.${crypto.createHmac("sha256", key).update(`session:${expires}`).digest("hex")}`;
};
const url = new URL(BASE);
for (const value of [sign(Math.floor(Date.now() / 1000) - 60), `${Math.floor(Date.now() / 1000) + 3600}.00ff`]) {
  await context.addCookies([{ name: "reflex_session", value, domain: url.hostname, path: "/ui" }]);
  await page.goto(`${BASE}/ui/`);
  assert.equal(new URL(page.url()).pathname, "/ui/login", `cookie ${value} is refused`);
}
// A session signed with a key derived from the audit token (what anyone holding a guess could compute) is
// refused: the key is the store's random one.
await context.addCookies([{ name: "reflex_session", value: sign(Math.floor(Date.now() / 1000) + 3600), domain: url.hostname, path: "/ui" }]);
await page.goto(`${BASE}/ui/`);
assert.equal(new URL(page.url()).pathname, "/ui/login");
step("expired, forged and token-derived session cookies are redirected");

// An approver's session: the waiting decisions, one decision's evidence, and the buttons that act.
await page.goto(`${BASE}/ui/login`);
await page.fill('input[name="token"]', APPROVER);
await Promise.all([page.waitForNavigation(), page.click('button[type="submit"]')]);
await page.goto(`${BASE}/ui/approvals`);
const waiting = page.locator("main table tbody tr", { hasText: "ui-approve-elb" }).first();
await waiting.waitFor();
assert.match(await waiting.textContent(), new RegExp(HELD_INSTANCE));
assert.match(await page.textContent("main"), /The way up/);
await page.screenshot({ path: `${OUT}/approvals-light.png`, fullPage: true });
await Promise.all([page.waitForNavigation(), waiting.locator("a").first().click()]);
assert.equal(new URL(page.url()).pathname, `/ui/approvals/${HELD}`);
const evidence = await page.textContent("main");
for (const seen of [HELD_INSTANCE, "OutOfService", "stopped", "Budgets left", "Last runs on this target", "manual"]) {
  assert.ok(evidence.includes(seen), `the evidence shows ${seen}`);
}
await page.screenshot({ path: `${OUT}/approval-light.png`, fullPage: true });
await page.emulateMedia({ colorScheme: "dark" });
await page.screenshot({ path: `${OUT}/approval-dark.png`, fullPage: true });
for (const scheme of ["dark", "light"]) {
  await page.emulateMedia({ colorScheme: scheme });
  assert.deepEqual(await contrast(), [], `text below 4.5:1 in ${scheme} mode on the approval page`);
}
const forgedVote = await context.request.post(`${BASE}/ui/approvals/${HELD}/approve`, {
  form: { csrf: "00" },
  maxRedirects: 0,
});
assert.equal(forgedVote.status(), 403, "a vote without the session's form token is refused");
await page.reload();
assert.equal(await page.locator("button.approve").count(), 1, "the refused vote changed nothing");
step("an approver sees the waiting decision and its evidence; a forged vote is refused");
await Promise.all([page.waitForNavigation(), page.click("button.approve")]);
assert.match(await page.textContent("[role=status]"), new RegExp(`Approved: replaced ${HELD_INSTANCE}`));
assert.match(await page.textContent("main"), /approved/);
assert.equal(await page.locator("button.approve").count(), 0, "a decided approval has no buttons");
await page.screenshot({ path: `${OUT}/approved-light.png`, fullPage: true });
await page.emulateMedia({ colorScheme: "dark" });
await page.screenshot({ path: `${OUT}/approved-dark.png`, fullPage: true });
await page.emulateMedia({ colorScheme: "light" });
step("approving on the page acts on the held instance");

const foreign = requested.filter((address) => !address.startsWith(BASE));
assert.deepEqual(foreign, [], "the pages request nothing from another origin");
step(`no request left ${BASE} (${requested.length} requests)`);
await browser.close();
