// Browser test of the status page (run by TestBrowser through enginetest.Browser.Run): Debian's chromium
// opens the overview while SIPp sends traffic and checks that the rate chart moves, finds the SIPp user on
// the registrations page, reloads a broken script with the button and sees the error with its line, and
// writes a screenshot of each page to SHOT_DIR.
'use strict';
const fs = require('fs');
const path = require('path');
const { launch } = require(process.env.LAUNCH);

const base = process.env.BASE_URL;
const shots = process.env.SHOT_DIR;
const aor = process.env.SIPP_AOR;
const expectWhere = process.env.EXPECT_WHERE; // "script.lua:3"

function check(cond, msg) { if (!cond) throw new Error(msg); }

(async () => {
  const browser = await launch();
  try {
    const ctx = await browser.newContext({
      httpCredentials: { username: process.env.WEB_USER, password: process.env.WEB_PASS },
      viewport: { width: 1280, height: 860 },
    });
    const page = await ctx.newPage();
    const jsErrors = [];
    page.on('pageerror', (e) => jsErrors.push(String(e)));
    page.on('console', (m) => { if (m.type() === 'error') jsErrors.push(m.text()); });
    const shot = async (name) => {
      const file = path.join(shots, name + '.png');
      await page.screenshot({ path: file, fullPage: true });
      console.log('screenshot ' + file);
    };

    // Overview: the chart gets samples over SSE and its request rate is above zero under SIPp's load.
    await page.goto(base + '/');
    await page.waitForFunction(() => Number(document.getElementById('samples').textContent) >= 3 &&
      Number(document.getElementById('rate-chart').dataset.maxIn) > 0, null, { timeout: 20000 });
    const n = Number(await page.textContent('#samples'));
    const before = await page.$eval('#rate-chart', (c) => c.toDataURL());
    await page.waitForFunction((k) => Number(document.getElementById('samples').textContent) >= k + 2, n, { timeout: 10000 });
    const after = await page.$eval('#rate-chart', (c) => c.toDataURL());
    check(before !== after, 'the rate chart did not change between samples');
    const rate = Number(await page.$eval('#rate-chart', (c) => c.dataset.maxIn));
    console.log('overview: ' + (await page.textContent('#samples')) + ' samples, max request rate ' + rate.toFixed(1) + '/s');
    check(/\d/.test(await page.textContent('#rate-in')), 'no rate in the requests/s card');
    // HOLD_SECONDS lets the chart fill before the screenshot (the README's picture)
    await page.waitForTimeout(1000 * Number(process.env.HOLD_SECONDS || 0));
    await shot('overview');

    // Registrations: search the SIPp user by AOR.
    await page.goto(base + '/registrations');
    await page.fill('#aor', aor);
    await Promise.all([page.waitForNavigation(), page.click('form.search button')]);
    const rows = await page.$$eval('#contacts tbody tr', (trs) => trs.map((tr) => tr.innerText));
    console.log('registrations: ' + JSON.stringify(rows));
    check(rows.length === 1 && rows[0].includes(aor) && rows[0].includes('SIPp-web-test'),
      'SIPp user ' + aor + ' not found on the registrations page: ' + JSON.stringify(rows));
    await shot('registrations');

    await page.goto(base + '/dispatcher');
    check((await page.textContent('main')).includes('Set 1'), 'no dispatcher set');
    await shot('dispatcher');
    await page.goto(base + '/htable?table=ipban');
    check((await page.$$('#items tbody tr')).length >= 1, 'no htable item');
    await shot('htable');

    // Reload with a broken script: the button answers with the error and its line, the history keeps it.
    fs.writeFileSync(process.env.SCRIPT_PATH, process.env.BROKEN_SCRIPT);
    await page.goto(base + '/script');
    await Promise.all([page.waitForNavigation(), page.click('#reload')]);
    const flash = await page.textContent('#flash');
    console.log('reload: ' + flash);
    check(flash.includes('reload failed') && flash.includes(expectWhere), 'reload error without ' + expectWhere + ': ' + flash);
    const last = await page.textContent('#reloads tbody tr:first-child');
    check(last.includes('failed') && last.includes(expectWhere), 'reload history: ' + last);
    await shot('script');

    check(jsErrors.length === 0, 'JavaScript errors: ' + jsErrors.join('; '));
    console.log('browser test ok');
  } finally {
    await browser.close();
  }
})().catch((e) => { console.error(e); process.exit(1); });
