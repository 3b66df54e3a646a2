// The user's browser for the OAuth bridge scenarios: Debian's Chromium driven by playwright-core (never
// `playwright install`). It opens an authorization URL, answers the bridge's consent page (approve or deny),
// logs in on the IdP's page (the suite's Hydra login form, or oidc-provider's devInteractions login and
// consent forms) and stops at the first navigation to the client's redirect URI, which it reports.
//
// Several flows of one test are one user's browser, so that the bridge remembers a consent per browser and
// client, and the IdP its session: either a Chromium the caller keeps running (E2E_CDP, its DevTools
// endpoint: each flow opens a page in it, which also spares a launch per flow), or a profile directory
// (E2E_PROFILE) that keeps the persistent cookies between launches.
//
// As a module: `authorize(url, options)` returns the report. As a program (an MCP client's BROWSER, or the
// Go test's authorization code fetcher):
//
//   node bridge-browser.mjs URL
//     E2E_REDIRECT_PREFIX  the client's redirect URI (required): the flow ends at a navigation to it
//     E2E_CDP              a running Chromium's DevTools websocket URL (ws://127.0.0.1:…/devtools/browser/…)
//     E2E_PROFILE          without E2E_CDP: browser profile directory (default: a fresh one)
//     E2E_USER             the user who logs in at the IdP (default alice)
//     E2E_CONSENT          approve | deny: the answer on the bridge's consent page (default approve)
//     E2E_DELIVER          1: let the redirect reach the client (retrying while its callback server is not
//                          up yet, as mcp-remote opens the browser before listening); else it is answered by
//                          the browser itself and only reported
//     E2E_RESULT           append the report (one JSON line) to this file instead of printing it
//     E2E_CHROMIUM         Chromium's path (default /usr/lib/chromium/chromium)
//
// The report: {redirect, pages: [{kind, host, path, status}], navigations: [{host, path, params}], codes,
// states, clientIds, finalURL, finalStatus, finalText, hosts, consoleErrors, error}. navigations are the
// main frame's requests, with the values of the parameters that describe the request (scope, audience,
// resource, code_challenge_method, ...) and only the names of the others. kind is consent (the bridge's page; with its text, its
// accessibility tree as a Playwright aria snapshot, and its lang), login (an IdP login form), idp-consent
// (an IdP consent form) or error (a document answered with a 4xx or 5xx status and no form). codes,
// states and clientIds are the `code`, `state` and `client_id` query values of every navigation, so the
// caller can check what appears in a log.
import { appendFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const approveRE = /allow|approve|accept|authori[sz]e|continue|yes/i;
const denyRE = /deny|cancel|refuse|reject|decline|no\b/i;

// Query parameters whose values a navigation's record keeps (the others are kept as names only).
const shownParams = new Set(['response_type', 'client_id', 'scope', 'audience', 'resource', 'code_challenge_method',
  'redirect_uri', 'prompt', 'error', 'iss']);

function log(...args) {
  console.error(new Date().toISOString(), 'bridge-browser:', ...args);
}

// authorize runs one authorization flow in Chromium; see the file comment for the options and the report.
export async function authorize(url, options = {}) {
  const {
    redirectPrefix,
    cdp = '',
    profile = '',
    user = 'alice',
    consent = 'approve',
    deliver = false,
    executablePath = process.env.E2E_CHROMIUM || '/usr/lib/chromium/chromium',
    timeoutMs = 60_000,
  } = options;
  if (!redirectPrefix) throw new Error('redirectPrefix is required');
  const deadline = Date.now() + timeoutMs;
  const report = {
    redirect: null, pages: [], navigations: [], codes: [], states: [], clientIds: [], hosts: [],
    finalURL: '', finalStatus: 0, finalText: '', consoleErrors: [], error: '',
  };
  const launch = {
    executablePath,
    headless: true,
    args: ['--no-sandbox', '--headless', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  };
  let browser = null;
  let pageToClose = null;
  let context;
  let tmpProfile = '';
  if (cdp) {
    browser = await chromium.connectOverCDP(cdp);
    context = browser.contexts()[0];
  } else {
    tmpProfile = profile ? '' : mkdtempSync(join(tmpdir(), 'bridge-browser-'));
    context = await chromium.launchPersistentContext(profile || tmpProfile, launch);
  }
  try {
    const page = cdp ? await context.newPage() : context.pages()[0] || (await context.newPage());
    if (cdp) pageToClose = page;
    let lastStatus = 0;
    page.on('request', (req) => {
      if (!req.isNavigationRequest() || req.frame() !== page.mainFrame()) return;
      let u;
      try {
        u = new URL(req.url());
      } catch {
        return;
      }
      if (!report.hosts.includes(u.host)) report.hosts.push(u.host);
      const params = {};
      for (const [k, v] of u.searchParams) {
        params[k] = shownParams.has(k) ? v : '…';
      }
      report.navigations.push({ host: u.host, path: u.pathname, params });
      const code = u.searchParams.get('code');
      if (code) report.codes.push(code);
      const clientId = u.searchParams.get('client_id');
      if (clientId && !report.clientIds.includes(clientId)) report.clientIds.push(clientId);
      const state = u.searchParams.get('state');
      if (state && !report.states.includes(state)) report.states.push(state);
      if (!report.redirect && req.url().startsWith(redirectPrefix)) report.redirect = req.url();
    });
    // Console errors name what the browser refused (a Content-Security-Policy violation, say).
    page.on('console', (msg) => {
      if (msg.type() === 'error') {
        log('console error:', msg.text());
        report.consoleErrors.push(msg.text().slice(0, 500));
      }
    });
    page.on('response', (resp) => {
      if (resp.request().isNavigationRequest() && resp.frame() === page.mainFrame()) lastStatus = resp.status();
    });
    if (!deliver) {
      // Nothing listens at the client's redirect URI: the browser answers a navigation there itself. (A
      // redirect there is not routed and ends in a connection error, which is as good: the request, the
      // authorization response, is recorded above.)
      await page.route((u) => u.href.startsWith(redirectPrefix), (route) =>
        route.fulfill({ status: 200, contentType: 'text/plain', body: 'authorization response received' }));
    }
    await page.goto(url).catch((e) => log('first navigation:', e.message));
    const seen = new Set();
    for (let step = 0; step < 25 && !report.redirect && Date.now() < deadline; step++) {
      await page.waitForLoadState('domcontentloaded').catch(() => {});
      if (report.redirect) break;
      let here;
      try {
        here = new URL(page.url());
      } catch {
        await page.waitForTimeout(250);
        continue;
      }
      const where = { host: here.host, path: here.pathname, status: lastStatus };
      const bridgeForm = page.locator('form[action*="/consent"]');
      const click = async (locator) => {
        await Promise.all([page.waitForNavigation({ timeout: 15_000 }).catch(() => {}), locator.click()]);
      };
      if (await bridgeForm.count()) {
        // What the user reads, and what assistive technology gets (the accessibility tree).
        const text = (await page.locator('body').innerText().catch(() => '')).slice(0, 2000);
        const aria = (await page.locator('body').ariaSnapshot().catch((e) => `unavailable: ${e.message}`)).slice(0, 4000);
        const lang = await page.locator('html').getAttribute('lang');
        report.pages.push({ kind: 'consent', ...where, text, aria, lang });
        const buttons = bridgeForm.first().locator('button, input[type=submit]');
        const n = await buttons.count();
        let target = null;
        for (let i = 0; i < n && !target; i++) {
          const b = buttons.nth(i);
          const label = [await b.innerText().catch(() => ''), await b.getAttribute('value'), await b.getAttribute('name')].join(' ');
          if ((consent === 'deny' ? denyRE : approveRE).test(label)) target = b;
        }
        if (!target) throw new Error(`no ${consent} button on the bridge's consent page at ${here.host}${here.pathname}`);
        log('bridge consent at', here.host, '->', consent);
        const before = page.url();
        await click(target);
        await page.waitForTimeout(200);
        if (!report.redirect && page.url() === before && (await bridgeForm.count())) {
          // The browser refused to follow the form (a Content-Security-Policy form-action that does not
          // allow where the redirects lead, say): clicking again would loop.
          throw new Error(`the consent form's submission went nowhere (still at ${here.host}${here.pathname}); console: ${report.consoleErrors.join(' | ') || 'nothing'}`);
        }
      } else if (await page.locator('input[name=username]').count()) {
        report.pages.push({ kind: 'login', ...where });
        log('login form at', here.host);
        await page.fill('input[name=username]', user);
        await click(page.locator('button[type=submit]').first());
      } else if (await page.locator('input[name=login]').count()) {
        report.pages.push({ kind: 'login', ...where });
        log('devInteractions login at', here.host);
        await page.fill('input[name=login]', user);
        await page.fill('input[name=password]', 'any-password');
        await click(page.locator('button[type=submit]').first());
      } else if (await page.locator('form button[type=submit]').count()) {
        report.pages.push({ kind: 'idp-consent', ...where });
        log('IdP consent form at', here.host);
        await click(page.locator('form button[type=submit]').first());
      } else if (lastStatus >= 400) {
        // An error page (no form to go on with): the flow ends here.
        const key = here.href;
        if (seen.has(key)) break;
        seen.add(key);
        report.pages.push({ kind: 'error', ...where });
        log('error page', lastStatus, 'at', here.host + here.pathname);
        await page.waitForTimeout(300); // a page that redirects by itself would do it now
        if (page.url() === key) break;
      } else {
        await page.waitForTimeout(250);
      }
    }
    report.finalURL = page.url();
    report.finalStatus = lastStatus;
    report.finalText = (await page.locator('body').innerText().catch(() => '')).slice(0, 2000);
    if (report.redirect && deliver) {
      let delivered = lastStatus > 0 && lastStatus < 400 && page.url().startsWith(redirectPrefix);
      for (let attempt = 1; !delivered && Date.now() < deadline; attempt++) {
        const resp = await page.goto(report.redirect).catch((e) => (log('callback attempt', attempt, e.message), null));
        if (resp && resp.ok()) delivered = true;
        else await new Promise((r) => setTimeout(r, 300));
      }
      if (!delivered) report.error = 'the redirect never reached the client';
    }
    if (!report.redirect && !report.error && report.pages.at(-1)?.kind !== 'error') {
      report.error = `never redirected to ${redirectPrefix}; last page ${page.url()}`;
    }
  } catch (e) {
    report.error = e.message;
  } finally {
    if (browser) {
      // Only this flow's page goes; the caller's Chromium keeps running with its cookies.
      await pageToClose?.close().catch(() => {});
      await browser.close().catch(() => {});
    } else {
      await context.close().catch(() => {});
    }
    if (tmpProfile) rmSync(tmpProfile, { recursive: true, force: true });
  }
  return report;
}

// Program mode.
if (import.meta.url === `file://${process.argv[1]}`) {
  const report = await authorize(process.argv[2], {
    redirectPrefix: process.env.E2E_REDIRECT_PREFIX,
    cdp: process.env.E2E_CDP || '',
    profile: process.env.E2E_PROFILE || '',
    user: process.env.E2E_USER || 'alice',
    consent: process.env.E2E_CONSENT || 'approve',
    deliver: process.env.E2E_DELIVER === '1',
  });
  const line = JSON.stringify(report);
  if (process.env.E2E_RESULT) appendFileSync(process.env.E2E_RESULT, line + '\n');
  else console.log(line);
  process.exit(report.error ? 1 : 0);
}
