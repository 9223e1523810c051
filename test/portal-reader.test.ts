import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { openBrowser, type PortalBrowser, signInPortal } from './_portal-browser.js'
import { ok, seedDisks } from './_portal-seed.js'
import { type RunningService, startService } from './_service.js'

/** Buttons that change nothing on the service (or only end the reader's own session, which anyone may). */
const HARMLESS =
  /^(Skip to content|Sign out|Previous page|Next page|Show|Revoke|Show the diff size of snapshot .*|Next|Back|Edit policy .*)$/
/** Names of controls that change something: none may be on a Reader's pages. */
const MUTATING =
  /Backup now|Stop protection|Resume protection|Protect|Create|New policy|Verify|Prune|Collect garbage|Undelete|Cancel|Delete|Assign|Approve|Deny|Start the restore|Enable|Lock|Remove|on the service/

// A Reader sees every page but no control that changes anything, and the API refuses a change sent
// anyway; no page shows a console error or a serious accessibility violation.
describe('the portal as a Reader', { timeout: 300_000 }, () => {
  let svc: RunningService
  let b: PortalBrowser
  before(async () => {
    svc = await startService()
    await seedDisks(svc, 'app-1')
    await ok(svc, 'POST', '/api/v1/vaults', { name: 'main' })
    await ok(svc, 'POST', '/api/v1/vaults/main/backupPolicies', {
      name: 'daily',
      schedule: { frequency: 'Daily', time: '02:00' },
      retention: { daily: { days: 7 } },
    })
    await ok(svc, 'POST', '/api/v1/vms', {
      name: 'app-1',
      osDisk: 'acct/vms/app-1-os',
      dataDisks: [{ lun: 0, disk: 'acct/vms/app-1-data' }],
    })
    await ok(svc, 'POST', '/api/v1/vaults/main/protectedItems', { vm: 'app-1', policy: 'daily' })
    const job = await ok(svc, 'POST', '/api/v1/vaults/main/protectedItems/app-1/backup', {})
    for (let i = 0; i < 600; i++) {
      const j = await ok(svc, 'GET', `/api/v1/jobs/${job.id}`)
      if (j.state === 'Completed') break
      assert.ok(!['Failed', 'Cancelled'].includes(j.state), JSON.stringify(j.error))
      await new Promise((r) => setTimeout(r, 100))
    }
    await ok(svc, 'POST', '/api/v1/users', { name: 'rita', password: 'reader-password-1', role: 'Reader' })
    b = await openBrowser()
  })
  after(async () => {
    await b?.close()
    await svc?.dispose()
  })

  it('every page shows its data, offers no mutating control, and has no console error or serious axe violation', async () => {
    await signInPortal(b.page, svc.url, 'rita', 'reader-password-1')
    const pages: [string, string, () => Promise<void>][] = [
      ['#/', 'Dashboard', () => b.page.getByRole('link', { name: '1 OK' }).waitFor()],
      ['#/vms', 'VMs', () => b.page.getByRole('link', { name: 'app-1' }).waitFor()],
      ['#/vms/app-1', 'app-1', () => b.page.locator('.timeline [data-point]').first().waitFor()],
      [
        '#/files/main/app-1',
        'File recovery',
        () => b.page.getByText(/needs a role with the restore permission/).waitFor(),
      ],
      ['#/disks', 'Disks', () => b.page.getByText('app-1-os').waitFor()],
      ['#/vaults', 'Vaults', () => b.page.getByRole('link', { name: 'main' }).waitFor()],
      [
        '#/vaults/main',
        'Vault main',
        () => b.page.getByRole('table', { name: 'Recovery points of the vault' }).waitFor(),
      ],
      [
        '#/policies',
        'Backup policies',
        () => b.page.getByRole('cell', { name: 'daily', exact: true }).waitFor(),
      ],
      ['#/jobs', 'Jobs', () => b.page.getByRole('link', { name: 'backup of app-1' }).waitFor()],
      ['#/settings', 'Settings', () => b.page.getByRole('table', { name: 'Users' }).waitFor()],
    ]
    for (const [hash, heading, loaded] of pages) {
      await b.page.goto(`${svc.url}/${hash}`)
      await b.page.getByRole('heading', { name: heading, level: 1 }).waitFor()
      await loaded()
      await b.page.waitForLoadState('networkidle').catch(() => {})
      const buttons = await b.page
        .getByRole('button')
        .evaluateAll((els) => els.map((e) => (e.getAttribute('aria-label') || e.textContent || '').trim()))
      const offered = buttons.filter((n) => !HARMLESS.test(n) && !/^\S+ \d{1,2}, \d{4}/.test(n))
      assert.deepEqual(
        offered.filter((n) => MUTATING.test(n)),
        [],
        `${hash} offers a Reader mutating controls`,
      )
      // Every other button is a point of the timeline (a date): still nothing that changes anything.
      for (const n of offered) assert.ok(!MUTATING.test(n), `${hash}: ${n}`)
      const forms = await b.page.locator('form').count()
      assert.equal(forms, 0, `${hash} shows no form to a Reader`)
      await b.shot(`reader-${heading.toLowerCase().replace(/\W+/g, '-')}`)
      assert.deepEqual(await b.axe(), [], `axe-core on ${hash}`)
      b.assertNoErrors(hash)
    }
    await b.page.goto(`${svc.url}/#/vms/app-1`)
    await b.page.locator('.timeline [data-point]').first().click()
    assert.equal(
      await b.page.getByRole('heading', { name: /Restore this point/ }).count(),
      0,
      'no restore wizard',
    )
  })

  it('the API refuses a change the page does not offer, even with the session’s CSRF token', async () => {
    const status = await b.page.evaluate(`fetch('/api/v1/vaults/main/protectedItems/app-1/backup', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-cairn-csrf': sessionStorage.getItem('cairn.csrf') },
      body: '{}',
    }).then((r) => r.json().then((j) => r.status + ' ' + j.error.code))`)
    assert.equal(status, '403 Forbidden')
    b.errors.splice(0) // the 403 just asked for
  })
})
