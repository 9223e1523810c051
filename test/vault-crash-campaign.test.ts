import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { OPERATIONS, runCampaign } from './_crash-campaign.js'

// `npm test` runs a short campaign (2 kills); `npm run soak` sets CAIRN_SOAK_KILLS (120) for the full one.
const KILLS = Number(process.env.CAIRN_SOAK_KILLS ?? 2)

describe('kill -9 campaign against cairn serve (issue 24)', () => {
  it(`${KILLS} kills during disk writes, backups, prune, gc and restores: after each restart every point restores exactly, verify agrees, prune and gc succeed, segments stay bounded`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-campaign-'))
    try {
      const report = await runCampaign(dir, KILLS, (line) => {
        if (process.env.CAIRN_SOAK_LOG) process.stderr.write(`${line}\n`)
      })
      assert.equal(report.kills, KILLS)
      assert.equal(report.restarts, KILLS)
      assert.equal(report.verifies, KILLS)
      assert.ok(report.pointsRestored >= KILLS, `only ${report.pointsRestored} restores checked`)
      if (KILLS >= 100) {
        for (const op of OPERATIONS)
          assert.ok(report.perOperation[op].kills > 0, `no kill during ${op} in ${KILLS} rounds`)
      }
      process.stderr.write(`campaign: ${JSON.stringify(report)}\n`)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
