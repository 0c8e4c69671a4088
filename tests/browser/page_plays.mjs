// Drives Debian's Chromium (playwright-core, no browser download) through amtgw's page: open /,
// join a channel by pasting its amt:// URL into the form, and check that the page's <video>
// plays it: currentTime advances, frames are decoded, videoWidth is the source's.
// Usage: node page_plays.mjs PAGE_URL AMT_URL WIDTH SCREENSHOT.png
import { chromium } from 'playwright-core';

const [pageUrl, amtUrl, width, screenshot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  headless: true,
  // What works headless on this machine kind (no sandbox as root, no GPU, no calls home).
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync',
         '--autoplay-policy=no-user-gesture-required'],
});
const result = {};
try {
  const page = await browser.newPage({ viewport: { width: 1000, height: 800 } });
  page.on('console', (m) => console.error(`page console: ${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => console.error(`page error: ${e.message}`));
  await page.goto(pageUrl);
  await page.fill('input[name=url]', amtUrl);
  await page.click('form#join button');
  const video = page.locator('#players video');
  await video.waitFor({ timeout: 10000 });
  // Playing: some frames decoded and the clock past a second.
  await page.waitForFunction(() => {
    const v = document.querySelector('#players video');
    return v.currentTime > 1 && v.getVideoPlaybackQuality().totalVideoFrames > 0;
  }, null, { timeout: 45000, polling: 250 });
  const first = await video.evaluate((v) => v.currentTime);
  // And still playing: the clock moves on (no assumption on how fast).
  await page.waitForFunction((t) => document.querySelector('#players video').currentTime > t + 1,
                             first, { timeout: 20000, polling: 250 });
  Object.assign(result, await video.evaluate((v) => ({
    currentTime: v.currentTime,
    decodedFrames: v.getVideoPlaybackQuality().totalVideoFrames,
    droppedFrames: v.getVideoPlaybackQuality().droppedVideoFrames,
    videoWidth: v.videoWidth,
    videoHeight: v.videoHeight,
  })));
  result.firstTime = first;
  // The table shows the channel as joined.
  await page.waitForFunction((u) => [...document.querySelectorAll('#channels tr')]
    .some((r) => r.textContent.includes(u) && r.textContent.includes('joined')), amtUrl,
  { timeout: 10000 });
  result.tableJoined = true;
  await page.screenshot({ path: screenshot });
  result.screenshot = screenshot;
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
if (String(result.videoWidth) !== width) {
  console.error(`videoWidth ${result.videoWidth}, the source's is ${width}`);
  process.exit(1);
}
