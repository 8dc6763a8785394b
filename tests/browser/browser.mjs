// Headless Debian Chromium driven by playwright-core: no browser download, no network
// beyond loopback.
import { chromium } from "playwright-core";

/** Where Debian installs Chromium; `CHROMIUM` overrides it. */
export const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";

/** Launches headless Chromium with the flags that keep it off the network. */
export function launch() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--disable-dev-shm-usage",
    ],
  });
}
