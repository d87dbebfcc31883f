// Shared launcher for the browser tests: Debian's chromium (never a downloaded browser) driven by
// playwright-core, with the flags that keep it off the (closed) network. Used by the Go tests through
// luabind/enginetest.NeedBrowser, which passes CHROMIUM (the executable) in the environment.
'use strict';
const { chromium } = require('playwright-core');

async function launch(extraArgs = []) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      // WebRTC users in tests: fake camera/microphone, no permission prompt.
      '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
      ...extraArgs,
    ],
  });
}

module.exports = { launch };
