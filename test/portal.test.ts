import assert from 'node:assert/strict'
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { openBrowser, type PortalBrowser, signInPortal } from './_portal-browser.js'
import { call, ok, pattern, seedDisks } from './_portal-seed.js'
import { gptExt4Disk, pseudoRandom, run, sha256, uploadDisk } from './_recovery-images.js'
import { apiFetch, type RunningService, startService } from './_service.js'

/** The part of an input element's validity a test reads. */
type Validity = { validity: { rangeUnderflow: boolean; rangeOverflow: boolean } }

const DOCS = join(import.meta.dirname, '../../docs')
const SIZE = 4 * 1024 * 1024

// The portal in Debian's chromium against a real `cairn serve`: an administrator's day, page by page,
// each page checked for console errors and accessibility (axe-core) and photographed. The disks and the
// VM are made through the API first (the portal has no disk editor); everything else is clicked.
describe('the portal in a real browser', { timeout: 600_000 }, () => {
  let svc: RunningService
  let b: PortalBrowser
  let password: string
  let dir: string
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cairn-portal-'))
    mkdirSync(join(dir, 'exports'))
    svc = await startService(['--export-root', join(dir, 'exports')])
    password = readFileSync(join(svc.data, 'initial-admin-password'), 'utf8').trim()
    await seedDisks(svc, 'web-1', SIZE)
    await ok(svc, 'POST', '/api/v1/vms', {
      name: 'web-1',
      osName: 'Debian 12',
      osDisk: 'acct/vms/web-1-os',
      dataDisks: [{ lun: 0, disk: 'acct/vms/web-1-data' }],
    })
    b = await openBrowser()
  })
  after(async () => {
    await b?.close()
    await svc?.dispose()
    rmSync(dir, { recursive: true, force: true })
  })

  /** Checks the page as it is now: no console error, no serious accessibility violation; saves a screenshot. */
  async function check(name: string, docs = false) {
    const path = await b.shot(name)
    // CAIRN_UPDATE_DOCS=1 refreshes the screenshots of docs/portal.md (a normal run leaves the tree as it is).
    if (docs && process.env.CAIRN_UPDATE_DOCS === '1') copyFileSync(path, join(DOCS, `portal-${name}.png`))
    assert.deepEqual(await b.axe(), [], `axe-core on ${name}`)
    b.assertNoErrors(name)
  }
  const page = () => b.page
  const go = async (hash: string, heading: string | RegExp) => {
    await page().goto(`${svc.url}/${hash}`)
    await page().getByRole('heading', { name: heading, level: 1 }).waitFor()
  }

  it('a wrong password is refused on the sign-in form with the API’s code', async () => {
    await page().goto(`${svc.url}/`)
    await page().getByLabel('User name').fill('admin')
    await page().getByLabel('Password').fill('not the password at all')
    await page().getByRole('button', { name: 'Sign in' }).click()
    await page().getByRole('alert').filter({ hasText: 'LoginFailed' }).waitFor()
    // The refused sign-in is the one console error a browser reports (its 401 answer): nothing else.
    const refused = b.errors.splice(0)
    assert.equal(refused.length, 1, refused.join('\n'))
    assert.match(refused[0]!, /401 .*\/api\/v1\/auth\/login/)
    await check('sign-in')
  })

  it('signs in with an HttpOnly SameSite=Strict session cookie and shows the empty dashboard', async () => {
    await signInPortal(page(), svc.url, 'admin', password)
    const session = (await b.context.cookies()).find((c) => c.name === 'cairn_session')
    assert.ok(session, 'a session cookie')
    assert.equal(session.httpOnly, true, 'the script cannot read the session')
    assert.equal(session.sameSite, 'Strict')
    const health = page().getByRole('region', { name: 'Protected VMs' })
    await health.getByRole('link', { name: '0', exact: true }).waitFor()
    await check('dashboard-empty')
  })

  it('creates a vault on the Vaults page', async () => {
    await go('#/vaults', 'Vaults')
    await page().getByLabel('Vault name').fill('main')
    await page().getByRole('button', { name: 'Create vault' }).click()
    await page().getByRole('status').filter({ hasText: 'Vault main created' }).waitFor()
    await page().getByRole('table', { name: 'Vaults' }).getByRole('link', { name: 'main' }).waitFor()
    const vaults = await ok(svc, 'GET', '/api/v1/vaults')
    assert.deepEqual(
      vaults.items.map((v: { name: string }) => v.name),
      ['main'],
    )
    await check('vaults')
  })

  it('the policy editor keeps numbers inside the reference bounds, previews the next runs, and creates the policy', async () => {
    await go('#/policies', 'Backup policies')
    await page().getByRole('button', { name: 'New policy' }).click()
    await page().getByLabel('Policy name').fill('daily')
    await page().getByLabel('Time', { exact: true }).fill('02:30')
    const daily = page().getByLabel('Daily points (days)')
    await daily.fill('3') // the reference's minimum is 7
    await page().getByRole('button', { name: 'Create policy' }).click()
    assert.equal(
      await daily.evaluate((e) => (e as unknown as Validity).validity.rangeUnderflow),
      true,
      'the form refuses 3 days',
    )
    const none = await ok(svc, 'GET', '/api/v1/vaults/main/backupPolicies')
    assert.equal(none.items.length, 0, 'nothing was sent')
    await daily.fill('10000') // the maximum is 9999
    await page().getByRole('button', { name: 'Create policy' }).click()
    assert.equal(
      await daily.evaluate((e) => (e as unknown as Validity).validity.rangeOverflow),
      true,
      'the form refuses 10000 days',
    )
    await daily.fill('14')
    const runs = page().getByRole('list', { name: 'Next runs' }).getByRole('listitem')
    assert.equal(await runs.count(), 5, 'five next runs are previewed')
    const first = await runs.first().locator('time').getAttribute('datetime')
    assert.match(first!, /T02:30:00\.000Z$/, 'at the policy time (UTC)')
    assert.ok(Date.parse(first!) > Date.now() && Date.parse(first!) <= Date.now() + 86_400_000)
    await page().getByText('Daily: the last 14 daily points').waitFor()
    await check('policy-editor', true)
    await page().getByRole('button', { name: 'Create policy' }).click()
    await page().getByRole('cell', { name: 'Daily at 02:30 UTC' }).waitFor()
    const made = await ok(svc, 'GET', '/api/v1/vaults/main/backupPolicies/daily')
    assert.deepEqual(made.schedule, { frequency: 'Daily', time: '02:30' })
    assert.deepEqual(made.retention.daily, { days: 14 })
    await check('policies')
  })

  it('protects the VM from its page', async () => {
    await go('#/vms', 'VMs')
    await page().getByRole('link', { name: 'web-1' }).click()
    await page().getByRole('heading', { name: 'web-1', level: 1 }).waitFor()
    await page().getByLabel('Vault and policy').selectOption('main/daily')
    await page().getByRole('button', { name: 'Protect' }).click()
    await page().getByRole('button', { name: 'Backup now' }).waitFor()
    const item = await ok(svc, 'GET', '/api/v1/vms/web-1/protectedItem')
    assert.equal(item.state, 'Protected')
    assert.equal(item.policyName, 'daily')
  })

  it('Backup now shows the job live until Completed, and the point appears on the timeline', async () => {
    await page().getByRole('button', { name: 'Backup now' }).click()
    const panel = page().locator('[data-job]')
    await panel.waitFor()
    const states: string[] = []
    for (let i = 0; i < 1200; i++) {
      const s = await panel.getAttribute('data-state')
      if (states.at(-1) !== s) states.push(s!)
      if (s === 'Completed' || s === 'Failed') break
      await page().waitForTimeout(100)
    }
    assert.equal(states.at(-1), 'Completed', `the job's states: ${states.join(' → ')}`)
    assert.ok(states.length >= 2, `the panel moved on by itself: ${states.join(' → ')}`)
    assert.equal(await panel.locator('progress').getAttribute('value'), '100')
    const points = await ok(svc, 'GET', '/api/v1/vaults/main/protectedItems/web-1/recoveryPoints')
    assert.equal(points.items.length, 1)
    const rp = points.items[0].id as string
    const onTimeline = page().locator(`.timeline [data-point="${rp}"]`)
    await onTimeline.waitFor()
    assert.equal(await onTimeline.getAttribute('aria-pressed'), 'true', 'the newest point is chosen')
    assert.match((await onTimeline.innerText()).replace(/\s+/g, ' '), /Snapshot.*OnDemand/)
    await check('vm', true)
  })

  it('restores the point’s disks through the wizard, with a summary first; the new disks hold the backed-up bytes', async () => {
    await page().getByLabel('New disks', { exact: true }).check()
    await page().getByRole('button', { name: 'Next' }).click()
    await page().getByLabel('Prefix of the new disks').fill('web-1-r')
    await page().getByRole('button', { name: 'Next' }).click()
    const summary = page().locator('dl.summary')
    await summary.getByText('web-1-r-os, web-1-r-lun0').waitFor()
    await check('restore-summary', true)
    await page().getByRole('button', { name: 'Start the restore' }).click()
    // The restore's own panel (the backup's, also Completed, stays on the page above it).
    const restore = page().locator('section[aria-labelledby="h-restore"]')
    await restore.locator('[data-job][data-state="Completed"]').waitFor({ timeout: 120_000 })
    await restore.getByRole('status').filter({ hasText: 'Restored' }).waitFor()
    for (const [disk, seeds] of [
      ['web-1-r-os', [1, 11]],
      ['web-1-r-lun0', [2, 12]],
    ] as const) {
      const base = `/api/v1/accounts/acct/containers/vms/disks/${disk}`
      const head = await call(svc, 'GET', `${base}/pages?offset=0&length=65536`)
      assert.equal(head.status, 200)
      assert.ok(Buffer.from(head.body).equals(Buffer.from(pattern(65536, seeds[0]))), `${disk}: first 64 KiB`)
      const tail = await call(svc, 'GET', `${base}/pages?offset=${SIZE - 65536}&length=65536`)
      assert.ok(Buffer.from(tail.body).equals(Buffer.from(pattern(65536, seeds[1]))), `${disk}: last 64 KiB`)
      const middle = await call(svc, 'GET', `${base}/pages?offset=${SIZE / 2}&length=65536`)
      assert.ok(
        Buffer.from(middle.body).every((x: number) => x === 0),
        `${disk}: zeros between`,
      )
    }
    await check('restore-done')
  })

  it('the Jobs page lists the backup and the restore, completed', async () => {
    await go('#/jobs', 'Jobs')
    const table = page().getByRole('table', { name: 'Jobs' })
    await table.getByRole('link', { name: 'backup of web-1' }).waitFor()
    await table.getByRole('link', { name: 'restore of web-1' }).waitFor()
    assert.equal(await table.getByText('Completed', { exact: true }).count(), 2)
    await check('jobs', true)
  })

  it('the dashboard counts the protected VM, the jobs and the vault’s usage, each number a link', async () => {
    await go('#/', 'Dashboard')
    const health = page().getByRole('region', { name: 'Protected VMs' })
    await health.getByRole('link', { name: '1 OK' }).waitFor()
    const jobs = page().getByRole('region', { name: 'Jobs, last 24 hours' })
    await jobs.getByRole('link', { name: '2 Completed' }).waitFor()
    await page().getByRole('table', { name: 'Vault usage' }).getByRole('link', { name: 'main' }).waitFor()
    await page()
      .getByRole('img', { name: /Bytes each VM's backups added/ })
      .waitFor()
    await check('dashboard', true)
    await health.getByRole('link', { name: '1 OK' }).click()
    await page().getByRole('heading', { name: 'VMs — OK' }).waitFor()
    await page().getByRole('link', { name: 'web-1' }).waitFor()
  })

  it('the Vault, Disks, File recovery and Settings pages show without errors', async () => {
    await go('#/vaults/main', 'Vault main')
    await page().getByRole('table', { name: 'Recovery points of the vault' }).waitFor()
    await page().getByText('Recovery points').first().waitFor()
    await check('vault')
    await go('#/disks', 'Disks')
    await page().getByRole('table', { name: 'Disks of acct/vms' }).getByText('web-1-r-os').waitFor()
    await check('disks')
    await go('#/files', 'File recovery')
    await page().getByLabel('VM').selectOption('web-1')
    await page().getByLabel('Recovery point').waitFor()
    await check('files')
    await go('#/settings', 'Settings')
    await page().getByRole('table', { name: 'Audit log, newest first' }).waitFor()
    await page()
      .getByRole('table', { name: 'Users' })
      .getByRole('cell', { name: 'admin', exact: true })
      .waitFor()
    await check('settings')
  })

  it('File recovery: volumes, a folder a page at a time, a file’s details and versions, its download equal to the backed-up bytes, a folder as tar and as a job', async () => {
    // A VM whose disk holds ext4 made by mkfs.ext4 -d, protected and backed up through the API.
    const tree = join(dir, 'tree')
    mkdirSync(join(tree, 'docs/many'), { recursive: true })
    const report = pseudoRandom(300_000, 5)
    writeFileSync(join(tree, 'docs/report.bin'), report)
    writeFileSync(join(tree, 'docs/notes ☕.txt'), 'notes\n')
    for (let i = 0; i < 60; i++)
      writeFileSync(join(tree, `docs/many/f${String(i).padStart(2, '0')}`), `${i}\n`)
    const image = gptExt4Disk(dir, tree, 16, 14)
    await uploadDisk((p, i) => apiFetch(`${svc.url}${p}`, i), 'files-1-os', image)
    await ok(svc, 'POST', '/api/v1/vms', { name: 'files-1', osDisk: 'devstoreaccount1/disks/files-1-os' })
    await ok(svc, 'POST', '/api/v1/vaults/main/protectedItems', { vm: 'files-1', policy: 'daily' })
    const job = await ok(svc, 'POST', '/api/v1/vaults/main/protectedItems/files-1/backup')
    for (let i = 0; i < 600; i++) {
      const j = await ok(svc, 'GET', `/api/v1/jobs/${job.id}`)
      if (j.state === 'Completed') break
      assert.ok(
        j.state === 'Running' || j.state === 'Queued',
        `backup ${j.state}: ${JSON.stringify(j.error)}`,
      )
      await new Promise((r) => setTimeout(r, 100))
    }

    await go('#/files', 'File recovery')
    await page().getByLabel('VM').selectOption('files-1')
    await page().getByLabel('Recovery point').selectOption({ index: 1 })
    const volumes = page().getByRole('table', { name: 'Volumes of the recovery point' })
    await volumes.getByRole('cell', { name: 'ext4' }).waitFor()
    await volumes.getByRole('link', { name: 'Browse os partition 1' }).click()
    await page().getByRole('table', { name: 'Entries of /' }).getByRole('link', { name: 'docs/' }).click()
    await page().getByRole('table', { name: 'Entries of /docs' }).getByRole('link', { name: 'many/' }).click()
    const many = page().getByRole('table', { name: 'Entries of /docs/many' })
    await many.getByRole('cell', { name: 'f49', exact: true }).waitFor()
    assert.equal(await many.getByRole('cell', { name: 'f50', exact: true }).count(), 0, '50 a page')
    await page()
      .getByRole('navigation', { name: 'Pages of Entries of /docs/many' })
      .getByRole('button', { name: 'Next page' })
      .click()
    await many.getByRole('cell', { name: 'f59', exact: true }).waitFor()
    assert.equal(await many.getByRole('cell', { name: 'f00', exact: true }).count(), 0)
    await check('files-browse')

    await page().getByRole('navigation', { name: 'Folder path' }).getByRole('link', { name: 'docs' }).click()
    await page()
      .getByRole('table', { name: 'Entries of /docs' })
      .getByRole('link', { name: 'report.bin' })
      .click()
    await page().getByRole('heading', { name: 'File /docs/report.bin' }).waitFor()
    assert.equal(await page().locator('dd[data-size]').getAttribute('data-size'), String(report.length))
    const [file] = await Promise.all([
      page().waitForEvent('download'),
      page().getByRole('link', { name: 'Download report.bin' }).click(),
    ])
    assert.equal(file.suggestedFilename(), 'report.bin')
    assert.equal(
      sha256(readFileSync((await file.path())!)),
      sha256(report),
      'the downloaded bytes are the backed-up bytes',
    )
    await page().getByRole('button', { name: 'Show versions across points' }).click()
    const versions = page().getByRole('table', { name: 'Versions of /docs/report.bin' })
    await versions.locator(`code[title="${sha256(report)}"]`).waitFor()
    await check('files', true)
    // Every control of the file page is reached with Tab.
    const reached = new Set<string>()
    await page().getByRole('heading', { name: 'File recovery', level: 1 }).focus()
    for (let i = 0; i < 40; i++) {
      await page().keyboard.press('Tab')
      reached.add(
        (await page().evaluate(
          "(document.activeElement?.getAttribute('aria-label') || document.activeElement?.textContent || '').trim()",
        )) as string,
      )
    }
    for (const name of [
      'Download report.bin',
      'Close',
      'many/',
      'Download docs as zip',
      'Save /docs on the service',
    ])
      assert.ok(reached.has(name), `Tab reaches "${name}" (reached: ${[...reached].join(' | ')})`)

    const [tar] = await Promise.all([
      page().waitForEvent('download'),
      page().getByRole('link', { name: 'Download docs as tar' }).click(),
    ])
    const listed = run('tar', ['-tf', (await tar.path())!]).split('\n')
    assert.ok(listed.includes('docs/report.bin') && listed.includes('docs/many/f59'), listed.join(' '))

    // Two ticked entries (a file and a folder) downloaded as one tar: each under its own name.
    const entries = page().getByRole('table', { name: 'Entries of /docs' })
    await entries.getByRole('checkbox', { name: 'Select report.bin' }).check()
    await entries.getByRole('checkbox', { name: 'Select many' }).check()
    const [picked] = await Promise.all([
      page().waitForEvent('download'),
      page().getByRole('link', { name: 'Download selected as tar' }).click(),
    ])
    const out = join(dir, 'picked')
    mkdirSync(out)
    run('tar', ['-xf', (await picked.path())!, '-C', out])
    assert.equal(sha256(readFileSync(join(out, 'report.bin'))), sha256(report))
    assert.ok(existsSync(join(out, 'many/f59')))

    // A big folder is written on the service as a job; outside the export roots it is refused.
    await page().getByLabel('Archive file on the service').fill(join(dir, 'elsewhere.tar'))
    await page().getByRole('button', { name: 'Save /docs on the service' }).click()
    await page().getByRole('alert').filter({ hasText: 'PathNotAllowed' }).waitFor()
    const refused = b.errors.splice(0)
    assert.equal(refused.length, 1, refused.join('\n'))
    assert.match(refused[0]!, /403/)
    const target = join(dir, 'exports/docs.zip')
    await page().getByLabel('Archive file on the service').fill(target)
    await page().getByLabel('Format').selectOption('zip')
    await page().getByRole('button', { name: 'Save /docs on the service' }).click()
    await page().locator('[data-job][data-state="Completed"]').waitFor({ timeout: 60_000 })
    assert.ok(existsSync(target))
    run('/usr/bin/python3', [
      '-c',
      'import zipfile,sys; assert zipfile.ZipFile(sys.argv[1]).testzip() is None',
      target,
    ])
    await check('files-job')

    // On a phone: nothing wider than the screen.
    await page().setViewportSize({ width: 390, height: 844 })
    const overflow = (await page().evaluate('document.documentElement.scrollWidth - innerWidth')) as number
    assert.ok(overflow <= 0, `the file page is ${overflow} px wider than the phone`)
    await page().setViewportSize({ width: 1280, height: 800 })
  })

  it('works on a phone in dark mode: nothing wider than the screen', async () => {
    await page().setViewportSize({ width: 390, height: 844 })
    await page().emulateMedia({ colorScheme: 'dark' })
    for (const [hash, heading] of [
      ['#/', 'Dashboard'],
      ['#/vms/web-1', 'web-1'],
      ['#/jobs', 'Jobs'],
    ] as const) {
      await go(hash, heading)
      await page()
        .waitForLoadState('networkidle')
        .catch(() => {})
      assert.equal(
        await page().evaluate('getComputedStyle(document.body).backgroundColor'),
        'rgb(17, 20, 24)',
      )
      const overflow = (await page().evaluate('document.documentElement.scrollWidth - innerWidth')) as number
      assert.ok(overflow <= 0, `${hash}: nothing wider than the phone (${overflow} px too wide)`)
    }
    await go('#/', 'Dashboard')
    await page().getByRole('table', { name: 'Vault usage' }).waitFor()
    await check('dashboard-phone-dark', true)
    await page().setViewportSize({ width: 1280, height: 800 })
    await page().emulateMedia({ colorScheme: 'light' })
  })

  it('every control is reachable with the keyboard: Tab reaches the navigation and the page’s buttons', async () => {
    await go('#/vms/web-1', 'web-1')
    const reached = new Set<string>()
    for (let i = 0; i < 60; i++) {
      await page().keyboard.press('Tab')
      reached.add(
        (await page().evaluate(
          "(document.activeElement?.getAttribute('aria-label') || document.activeElement?.textContent || '').trim()",
        )) as string,
      )
    }
    for (const name of ['Skip to content', 'Dashboard', 'Settings', 'Backup now', 'Next'])
      assert.ok(reached.has(name), `Tab reaches "${name}" (reached: ${[...reached].join(' | ')})`)
  })

  it('signs out: the session ends on the service and the sign-in form is back', async () => {
    await page().getByRole('button', { name: 'Sign out' }).click()
    await page().getByRole('heading', { name: 'Sign in to Cairn' }).waitFor()
    const status = await page().evaluate("fetch('/api/v1/auth/whoami').then((r) => r.status)")
    assert.equal(status, 401)
    b.errors.splice(0) // the 401 just asked for
    await check('signed-out')
  })
})
