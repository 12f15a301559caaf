// Drives the page in a real Chromium (Debian's, through playwright-core) with a fake microphone
// playing a WAV, until the page shows what `until` asks for, then prints what the page recorded
// (window.voiceAgents, the transcript, the on-page message) as one JSON line. The assertions
// are made by the pytest that runs this (tests/e2e/test_browser.py). Exit 1 on a timeout, with
// the same JSON (and the error) so the test can show what the page saw.
//   node test/browser.mjs '{"url": ..., "agent": ..., "wav": ..., "chromium": ...,
//                           "until": "cut_in"|"agent_audio"|"error", "timeoutMs": ...,
//                           "screenshot": "optional.png"}'
import { chromium } from 'playwright-core';

const opts = JSON.parse(process.argv[2]);
const args = ['--autoplay-policy=no-user-gesture-required'];
if (opts.wav) {
  args.push('--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
    `--use-file-for-fake-audio-capture=${opts.wav}`);
}
// a microphone exists, and the user says no when asked for it
if (opts.denyMic) args.push('--use-fake-device-for-media-stream', '--deny-permission-prompts');

// What the page must show before we stop (evaluated in the page).
const UNTIL = {
  // a cut-in marker, the count at its limit before it, and agent audio after it
  cut_in: () => {
    const ev = window.voiceAgents.events;
    const cut = ev.find((e) => e.kind === 'cut_in');
    return cut && ev.some((e) => e.kind === 'agent_audio_start' && e.t >= cut.t - 2000)
      && document.querySelector('#transcript li.user');
  },
  agent_audio: () => window.voiceAgents.firstAgentAudioMs !== null,
  error: () => document.querySelector('#message.error'),
};

const browser = await chromium.launch({ executablePath: opts.chromium, headless: true, args });
const page = await browser.newPage({ viewport: { width: 900, height: 700 } });
const console_ = [];
page.on('console', (msg) => console_.push(`${msg.type()}: ${msg.text()}`));
page.on('pageerror', (err) => console_.push(`pageerror: ${err.message}`));
let error = null;
try {
  await page.goto(`${opts.url}/?agent=${encodeURIComponent(opts.agent)}`);
  await page.waitForFunction((a) => document.getElementById('agent').value === a, opts.agent);
  await page.click('#join');
  await page.waitForFunction(UNTIL[opts.until], null,
    { timeout: opts.timeoutMs ?? 60000, polling: 100 });
  if (opts.settleMs) await page.waitForTimeout(opts.settleMs);
  if (opts.screenshot) await page.screenshot({ path: opts.screenshot, fullPage: true });
} catch (e) {
  error = String(e.message ?? e).split('\n')[0];
}
const seen = await page.evaluate(() => ({
  ...window.voiceAgents,
  message: document.getElementById('message').textContent,
  messageIsError: document.getElementById('message').className === 'error',
  transcript: [...document.querySelectorAll('#transcript li')].map((li) => ({
    cls: li.className, text: li.textContent })),
  sentences: document.getElementById('sentences').textContent,
  maxSentences: document.getElementById('max-sentences').textContent,
  suppressed: document.getElementById('suppressed').textContent,
})).catch((e) => ({ evaluateError: String(e) }));
await page.click('#leave').catch(() => {});
await browser.close();
console.log(JSON.stringify({ error, ...seen, console: console_.slice(-30) }));
process.exit(error ? 1 : 0);
