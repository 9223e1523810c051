import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { twoSites, until } from './_geo.js'
import { api } from './_jobs.js'
import { openBrowser, type PortalBrowser, signInPortal } from './_portal-browser.js'
import type { RunningService } from './_service.js'

// The portal shows geo-redundancy (docs/replication.md): the dashboard lists every GRS vault and
// geo-replicated account with its lag, the Vaults list names each vault's redundancy, and a vault's
// page its role, paired site, last sync and lag, on the primary and on the replica.
describe('the portal shows replication and its lag', { timeout: 300_000 }, () => {
  let east: RunningService
  let west: RunningService
  let b: PortalBrowser
  const password = (svc: RunningService) =>
    readFileSync(join(svc.data, 'initial-admin-password'), 'utf8').trim()

  before(async () => {
    ;({ east, west } = await twoSites())
    const made = await api(east.url, 'POST', '/api/v1/vaults', {
      name: 'geo',
      redundancy: 'GRS',
      pair: 'west',
    })
    assert.equal(made.status, 201, JSON.stringify(made.body))
    assert.equal((await api(east.url, 'POST', '/api/v1/vaults', { name: 'local' })).status, 201)
    const acct = await api(east.url, 'POST', '/api/v1/accounts', {
      name: 'geoacct',
      redundancy: 'RA-GRS',
      pair: 'west',
    })
    assert.equal(acct.status, 201, JSON.stringify(acct.body))
    await until('the replica reports its first sync to the primary', async () => {
      const v = await api(east.url, 'GET', '/api/v1/vaults/geo')
      return typeof v.body.replication?.lastSyncAt === 'string'
    })
    b = await openBrowser()
  })
  after(async () => {
    await b?.close()
    await Promise.all([east?.dispose(), west?.dispose()])
  })

  it('on the primary: the dashboard lists the GRS vault and the RA-GRS account, the Vaults list and the vault page show the lag', async () => {
    await signInPortal(b.page, east.url, 'admin', password(east))
    const table = b.page.getByRole('table', { name: 'Replication to paired sites' })
    await table.waitFor()
    const vaultRow = table.getByRole('row').filter({ hasText: 'geo' }).filter({ hasText: 'Vault' })
    assert.match(await vaultRow.innerText(), /Primary\s+west[\s\S]*0 points \(0 B\) behind/)
    const acctRow = table.getByRole('row').filter({ hasText: 'geoacct' })
    assert.match(await acctRow.innerText(), /Account\s+geoacct\s+primary\s+west/)
    assert.equal(
      await table.getByRole('row').filter({ hasText: 'local' }).count(),
      0,
      'an LRS vault is not listed',
    )
    await vaultRow.getByRole('link', { name: '0 points (0 B) behind' }).click()
    await b.page.getByRole('heading', { name: 'Vault geo', level: 1 }).waitFor()
    const card = b.page.locator('section', { has: b.page.getByRole('heading', { name: 'Redundancy' }) })
    await card.getByText('Primary', { exact: true }).waitFor()
    const text = await card.innerText()
    assert.match(text, /Paired site\s+west/)
    assert.match(text, /Lag\s+0 points \(0 B\) behind/)
    assert.doesNotMatch(text, /Last sync\s+—/, 'the last sync time is shown')
    assert.deepEqual(await b.axe(), [])
    await b.page.goto(`${east.url}/#/vaults`)
    await b.page.getByText('GRS · Primary → west · 0 points (0 B) behind').waitFor()
    await b.page.getByRole('row').filter({ hasText: 'local' }).getByText('LRS', { exact: true }).waitFor()
    b.assertNoErrors('the primary')
  })

  it('on the secondary: the vault page names it a read-only replica of the primary', async () => {
    await b.page.goto(`${west.url}/`)
    await b.context.clearCookies()
    await signInPortal(b.page, west.url, 'admin', password(west))
    await b.page.goto(`${west.url}/#/vaults/geo`)
    const card = b.page.locator('section', { has: b.page.getByRole('heading', { name: 'Redundancy' }) })
    await card.getByText('Secondary (read-only replica)').waitFor()
    assert.match(await card.innerText(), /Paired site\s+east/)
    b.assertNoErrors('the secondary')
  })
})
