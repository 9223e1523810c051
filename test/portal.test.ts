import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { openBrowser, type PortalBrowser, signInPortal } from './_portal-browser.js'
import { ok, seedDisks } from './_portal-seed.js'
import { type RunningService, startService } from './_service.js'

// The portal in Debian's chromium against a real `cairn serve`: an administrator's day, page by page,
// each page checked for console errors and accessibility (axe-core) and photographed.
describe('the portal in a real browser', { timeout: 300_000 }, () => {
  let svc: RunningService
  let b: PortalBrowser
  let password: string
  before(async () => {
    svc = await startService()
    password = readFileSync(join(svc.data, 'initial-admin-password'), 'utf8').trim()
    await seedDisks(svc, 'web-1')
    b = await openBrowser()
  })
  after(async () => {
    await b?.close()
    await svc?.dispose()
  })

  /** Checks the page as it is now: no console error, no serious accessibility violation; saves a screenshot. */
  async function check(name: string) {
    await b.shot(name)
    assert.deepEqual(await b.axe(), [], `axe-core on ${name}`)
    b.assertNoErrors(name)
  }

  it('a wrong password is refused on the sign-in form with the API’s code', async () => {
    await b.page.goto(`${svc.url}/`)
    await b.page.getByLabel('User name').fill('admin')
    await b.page.getByLabel('Password').fill('not the password at all')
    await b.page.getByRole('button', { name: 'Sign in' }).click()
    await b.page.getByRole('alert').filter({ hasText: 'LoginFailed' }).waitFor()
    // The refused sign-in is the one console error a browser reports (its 401 answer): nothing else.
    const refused = b.errors.splice(0)
    assert.equal(refused.length, 1, refused.join('\n'))
    assert.match(refused[0]!, /401 .*\/api\/v1\/auth\/login/)
    await check('sign-in')
  })

  it('signs in with the session cookie and shows the dashboard with a protected VM', async () => {
    b.errors.splice(0)
    await ok(svc, 'POST', '/api/v1/vaults', { name: 'main' })
    await ok(svc, 'POST', '/api/v1/vaults/main/backupPolicies', {
      name: 'daily',
      schedule: { frequency: 'Daily', time: '02:00' },
      retention: { daily: { days: 7 } },
    })
    await ok(svc, 'POST', '/api/v1/vms', {
      name: 'web-1',
      osDisk: 'acct/vms/web-1-os',
      dataDisks: [{ lun: 0, disk: 'acct/vms/web-1-data' }],
    })
    await ok(svc, 'POST', '/api/v1/vaults/main/protectedItems', { vm: 'web-1', policy: 'daily' })
    await signInPortal(b.page, svc.url, 'admin', password)
    const cookies = await b.context.cookies()
    const session = cookies.find((c) => c.name === 'cairn_session')
    assert.ok(session, 'a session cookie')
    assert.equal(session.httpOnly, true, 'the script cannot read the session')
    assert.equal(session.sameSite, 'Strict')
    const health = b.page.getByRole('region', { name: 'Protected VMs' })
    await health.getByRole('link', { name: '1', exact: true }).waitFor()
    await health.getByRole('link', { name: '1 OK' }).waitFor()
    await b.page.getByRole('heading', { name: 'Vault usage' }).waitFor()
    await check('dashboard')
  })

  it('the dashboard works on a phone and in dark mode', async () => {
    await b.page.setViewportSize({ width: 390, height: 844 })
    await b.page.emulateMedia({ colorScheme: 'dark' })
    await b.page.reload()
    await b.page.getByRole('heading', { name: 'Vault usage' }).waitFor()
    const bg = await b.page.evaluate('getComputedStyle(document.body).backgroundColor')
    assert.equal(bg, 'rgb(17, 20, 24)', 'dark background from prefers-color-scheme')
    const overflow = (await b.page.evaluate('document.documentElement.scrollWidth - innerWidth')) as number
    assert.ok(overflow <= 0, `nothing wider than the phone (${overflow} px too wide)`)
    await check('dashboard-phone-dark')
    await b.page.setViewportSize({ width: 1280, height: 800 })
    await b.page.emulateMedia({ colorScheme: 'light' })
  })

  it('signs out: the session ends on the service and the sign-in form is back', async () => {
    await b.page.getByRole('button', { name: 'Sign out' }).click()
    await b.page.getByRole('heading', { name: 'Sign in to Cairn' }).waitFor()
    const status = await b.page.evaluate("fetch('/api/v1/auth/whoami').then((r) => r.status)")
    assert.equal(status, 401)
    b.errors.splice(0) // the 401 just asked for
    await check('signed-out')
  })
})
