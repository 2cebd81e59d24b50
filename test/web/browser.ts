/**
 * @module test/web/browser
 * Headless Chromium for the web tests and bench: Debian's /usr/bin/chromium driven by
 * playwright-core (never a downloaded browser), a fresh profile each time, removed on close.
 */
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { CapabilityError } from '../../graph/errors.js';

export const CHROMIUM = '/usr/bin/chromium';

export interface Browser {
  context: BrowserContext;
  page: Page;
  /** Console errors and uncaught page errors seen so far (a CSP violation shows up here). */
  errors: string[];
  close(): Promise<void>;
}

/** Launch Chromium headless at a laptop's size (1366×768). */
export async function launchBrowser(viewport = { width: 1366, height: 768 }): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new CapabilityError(`${CHROMIUM} is missing: install the Debian package chromium (scripts/apt-packages.txt)`, 'chromium');
  const profile = mkdtempSync(join(tmpdir(), 'prov-chromium-'));
  try {
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      viewport,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync'],
    });
    const page = context.pages()[0] ?? await context.newPage();
    const errors: string[] = [];
    page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
    page.on('pageerror', (e) => errors.push(e.message));
    return {
      context, page, errors,
      close: async () => { try { await context.close(); } finally { rmSync(profile, { recursive: true, force: true }); } },
    };
  } catch (err) {
    rmSync(profile, { recursive: true, force: true });
    throw err;
  }
}
