import assert from 'node:assert/strict'
import { mkdirSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core'

/** Debian's chromium: the tests never use a browser that playwright downloads. */
export const CHROMIUM = '/usr/bin/chromium'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..')
/** Where the portal tests save their screenshots (test-results/portal, or $CAIRN_TEST_OUTPUT/portal). */
export const SHOTS = join(process.env.CAIRN_TEST_OUTPUT ?? join(ROOT, 'test-results'), 'portal')

const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8')

/** A browser page on the portal that records every console error and uncaught exception. */
export interface PortalBrowser {
  browser: Browser
  context: BrowserContext
  page: Page
  /** Console errors, page errors and failed requests seen so far. */
  errors: string[]
  /** Saves a full-page screenshot as SHOTS/NAME.png and answers its path. */
  shot(name: string): Promise<string>
  /** Runs axe-core on the page; answers the serious and critical violations (rule: nodes). */
  axe(): Promise<string[]>
  /** Fails when any console error was seen, then forgets them. */
  assertNoErrors(where: string): void
  close(): Promise<void>
}

/** Starts chromium (headless) on a viewport of `width` × `height` CSS pixels and opens a page. */
export async function openBrowser(
  options: { width?: number; height?: number; colorScheme?: 'light' | 'dark' } = {},
): Promise<PortalBrowser> {
  mkdirSync(SHOTS, { recursive: true })
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  })
  const context = await browser.newContext({
    viewport: { width: options.width ?? 1280, height: options.height ?? 800 },
    colorScheme: options.colorScheme ?? 'light',
  })
  const page = await context.newPage()
  const errors: string[] = []
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console: ${m.text()} (${m.location().url})`)
  })
  page.on('pageerror', (e) => errors.push(`page error: ${e.message}`))
  return {
    browser,
    context,
    page,
    errors,
    async shot(name) {
      const path = join(SHOTS, `${name}.png`)
      await page.screenshot({ path, fullPage: true })
      return path
    },
    async axe() {
      // Evaluated through the DevTools protocol: the page's CSP (no inline script) stays on.
      await page.evaluate(AXE)
      const result = (await page.evaluate(
        `axe.run(document, { resultTypes: ['violations'] }).then((r) => r.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.target.join(' ')).slice(0, 5) })))`,
      )) as { id: string; impact: string; nodes: string[] }[]
      return result
        .filter((v) => v.impact === 'serious' || v.impact === 'critical')
        .map((v) => `${v.id} (${v.impact}): ${v.nodes.join(', ')}`)
    },
    assertNoErrors(where) {
      const seen = errors.splice(0)
      assert.deepEqual(seen, [], `console errors on ${where}`)
    },
    close: () => browser.close(),
  }
}

/** Signs in through the portal's form and waits for the dashboard. */
export async function signInPortal(page: Page, url: string, user: string, password: string): Promise<void> {
  await page.goto(`${url}/`)
  await page.getByLabel('User name').fill(user)
  await page.getByLabel('Password').fill(password)
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.getByRole('heading', { name: 'Dashboard', level: 1 }).waitFor()
}
