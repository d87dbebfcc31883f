// Browser calls through siplua (run by TestBrowser* through enginetest.Browser.Run): Debian's chromium,
// SIP.js in a page served by the Go test. MODE=b2b: alice and bob register over WSS with digest auth,
// alice calls bob, both reach Established, alice hangs up, both reach Terminated. MODE=uas: alice
// registers over WS and calls a SIPp UAS (TARGET) on UDP, then hangs up.
'use strict';
const { launch } = require(process.env.LAUNCH);

async function waitEvent(page, want, ms = 15000) {
  await page.waitForFunction((w) => window.events.includes(w), want, { timeout: ms })
    .catch(async () => { throw new Error(`no "${want}"; events: ${JSON.stringify(await page.evaluate(() => window.events))}`); });
}

async function agent(browser, user, password, server, fakeMedia) {
  const page = await browser.newPage();
  page.on('console', (m) => { if (m.type() === 'error' || process.env.TRACE) console.log(`${user} console: ${m.text()}`); });
  page.on('pageerror', (e) => console.log(`${user} page error: ${e}`));
  await page.goto(process.env.PAGE);
  await page.evaluate((o) => window.startAgent(o), { user, password, server, domain: 'sip.example', fakeMedia, trace: !!process.env.TRACE });
  console.log(`${user} registered`);
  return page;
}

(async () => {
  const browser = await launch(['--ignore-certificate-errors']);
  try {
    if (process.env.MODE === 'b2b') {
      const alice = await agent(browser, 'alice', 'alice-secret', process.env.SERVER, false);
      const bob = await agent(browser, 'bob', 'bob-secret', process.env.SERVER, false);
      await alice.evaluate(() => window.call('sip:bob@sip.example'));
      await waitEvent(bob, 'invite from alice');
      await waitEvent(alice, 'caller Established');
      await waitEvent(bob, 'callee Established');
      console.log('call established');
      await alice.evaluate(() => window.hangup());
      await waitEvent(alice, 'caller Terminated');
      await waitEvent(bob, 'callee Terminated');
      console.log('call ended by bye');
    } else {
      const alice = await agent(browser, 'alice', 'alice-secret', process.env.SERVER, true);
      await alice.evaluate((t) => window.call(t), process.env.TARGET);
      await waitEvent(alice, 'caller Established');
      console.log('call established');
      await alice.evaluate(() => window.hangup());
      await waitEvent(alice, 'caller Terminated');
      console.log('call ended by bye');
    }
  } finally {
    await browser.close();
  }
})().catch((e) => { console.error(e); process.exit(1); });
