// The user's browser for mcp-remote: mcp-remote runs $BROWSER with the authorization URL; this script opens
// it in Debian's Chromium (driven by playwright-core, never `playwright install`), logs in on the IdP's
// page as $E2E_USER (the suite's Hydra login form, or oidc-provider's devInteractions login and consent
// forms) and follows the redirect to mcp-remote's callback, retrying while the callback is not listening
// yet (mcp-remote opens the browser before its callback server is up).
import { chromium } from 'playwright-core';

const url = process.argv[2];
const user = process.env.E2E_USER || 'alice';
const executablePath = process.env.E2E_CHROMIUM || '/usr/lib/chromium/chromium';
const deadline = Date.now() + 60_000;

function log(...args) {
  console.error(new Date().toISOString(), 'browser:', ...args);
}

const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: ['--no-sandbox', '--headless', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
let status = 1;
try {
  const page = await browser.newPage();
  let callback = null;
  let delivered = false;
  page.on('request', (req) => {
    if (req.isNavigationRequest() && /\/oauth\/callback\?/.test(req.url())) callback = req.url();
  });
  page.on('response', (resp) => {
    if (/\/oauth\/callback\?/.test(resp.url()) && resp.ok()) delivered = true;
  });
  await page.goto(url).catch((e) => log('first navigation:', e.message));
  for (let step = 0; step < 20 && !callback && Date.now() < deadline; step++) {
    await page.waitForLoadState('domcontentloaded').catch(() => {});
    const host = new URL(page.url()).host;
    if (await page.locator('input[name=username]').count()) {
      log('login form at', host);
      await page.fill('input[name=username]', user);
      await Promise.all([page.waitForNavigation().catch(() => {}), page.click('button[type=submit]')]);
    } else if (await page.locator('input[name=login]').count()) {
      log('devInteractions login at', host);
      await page.fill('input[name=login]', user);
      await page.fill('input[name=password]', 'any-password');
      await Promise.all([page.waitForNavigation().catch(() => {}), page.click('button[type=submit]')]);
    } else if (await page.locator('form button[type=submit]').count()) {
      log('consent form at', host);
      await Promise.all([page.waitForNavigation().catch(() => {}), page.click('form button[type=submit]')]);
    } else {
      await page.waitForTimeout(250);
    }
  }
  if (!callback) throw new Error('never redirected to the callback; last page ' + page.url());
  // Deliver the code: retry while mcp-remote's callback server is not up.
  await page.waitForTimeout(200);
  if (delivered) {
    log('callback delivered');
    status = 0;
  }
  for (let attempt = 1; !delivered && Date.now() < deadline; attempt++) {
    const resp = await page.goto(callback).catch((e) => (log('callback attempt', attempt, e.message), null));
    if (resp && resp.ok()) {
      log('callback delivered after', attempt, 'attempt(s)');
      status = 0;
      break;
    }
    await new Promise((r) => setTimeout(r, 300));
  }
} catch (e) {
  log('failed:', e.message);
} finally {
  await browser.close();
}
process.exit(status);
