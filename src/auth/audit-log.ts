import { createHash } from 'node:crypto'
import { type Kysely, sql } from 'kysely'
import type { AuditLogTable, Catalog, CatalogSchema } from '../catalog/index.js'

/** What one audit record says: who, with which roles, from where, did what to what, and how it ended. */
export interface AuditEntry {
  /** The user name, `anonymous`, or the name tried at a failed sign-in. */
  actor: string
  roles: string[]
  /** The client's address. */
  client: string
  /** `login`, `logout`, or `METHOD /openapi/path` of a request. */
  action: string
  /** The request path, or the user signing in. */
  target: string
  result: 'success' | 'failure' | 'denied'
  /** The HTTP status answered. */
  status: number
  /** Error code and other facts; never a secret. */
  details?: Record<string, unknown>
}

/** An audit record as stored: its place in the chain, its time and the hashes that chain it. */
export interface AuditRecord extends AuditEntry {
  seq: number
  time: string
  details: Record<string, unknown>
  prevHash: string
  hash: string
}

/** What `verify` found: ok when every record is there, unchanged, and chained to the one before. */
export interface AuditVerifyReport {
  ok: boolean
  records: number
  problems: { seq: number; problem: string }[]
}

const GENESIS = '0'.repeat(64)
const HEAD_SETTING = 'audit_head'

/** The advisory-lock key of audit appends on a shared PostgreSQL catalog ('cairnaud'). */
const AUDIT_LOCK = 0x636169726e617564n

/**
 * The append-only, hash-chained audit log in the catalog (table `audit_log`). Record `seq` carries
 * `hash = SHA-256(prevHash + "\n" + JSON [seq, time, actor, roles, client, action, target, result,
 * status, details])` and the hash of record `seq - 1` as `prevHash`; the last record's seq and hash are
 * also kept in the setting `audit_head`, so a removed last record is found too. Appends are serialized.
 */
export class AuditLog {
  readonly #catalog: Catalog
  readonly #now: () => number
  #tail: Promise<unknown> = Promise.resolve()
  #head: { seq: number; hash: string } | undefined

  constructor(catalog: Catalog, options: { now?: () => number } = {}) {
    this.#catalog = catalog
    this.#now = options.now ?? Date.now
  }

  /** Appends one record to the chain and answers it. */
  append(entry: AuditEntry): Promise<AuditRecord> {
    const run = this.#tail.then(() => this.#append(entry))
    this.#tail = run.catch(() => {})
    return run
  }

  async #append(entry: AuditEntry): Promise<AuditRecord> {
    const db = this.#catalog.db
    // A shared (PostgreSQL) catalog has other writers: the chain's head is read under a lock, in the
    // transaction that appends; one process alone may keep it in memory.
    const shared = this.#catalog.dialect === 'postgres'
    let record!: AuditRecord
    await db.transaction().execute(async (trx) => {
      if (shared) await sql`select pg_advisory_xact_lock(${AUDIT_LOCK})`.execute(trx)
      const head = !shared && this.#head ? this.#head : await this.#readHead(trx)
      record = {
        seq: head.seq + 1,
        time: new Date(this.#now()).toISOString(),
        actor: entry.actor,
        roles: entry.roles,
        client: entry.client,
        action: entry.action,
        target: entry.target,
        result: entry.result,
        status: entry.status,
        details: entry.details ?? {},
        prevHash: head.hash,
        hash: '',
      }
      record.hash = hashOf(record)
      await trx
        .insertInto('audit_log')
        .values({
          seq: record.seq,
          time: record.time,
          actor: record.actor,
          roles: JSON.stringify(record.roles),
          client: record.client,
          action: record.action,
          target: record.target,
          result: record.result,
          status: record.status,
          details_json: JSON.stringify(record.details),
          prev_hash: record.prevHash,
          hash: record.hash,
        })
        .execute()
      const value = `${record.seq}:${record.hash}`
      await trx
        .insertInto('settings')
        .values({ key: HEAD_SETTING, value })
        .onConflict((oc) => oc.column('key').doUpdateSet({ value }))
        .execute()
    })
    this.#head = { seq: record.seq, hash: record.hash }
    return record
  }

  async #readHead(db: Kysely<CatalogSchema> = this.#catalog.db): Promise<{ seq: number; hash: string }> {
    const last = await db
      .selectFrom('audit_log')
      .select(['seq', 'hash'])
      .orderBy('seq', 'desc')
      .limit(1)
      .executeTakeFirst()
    return last ? { seq: Number(last.seq), hash: last.hash } : { seq: 0, hash: GENESIS }
  }

  /** Records newest first; `before` is a seq to continue below (the `nextCursor` of the page before). */
  async list(
    options: { limit?: number; before?: number; actor?: string } = {},
  ): Promise<{ items: AuditRecord[]; nextCursor?: string }> {
    const limit = Math.min(Math.max(options.limit ?? 100, 1), 1000)
    let q = this.#catalog.db
      .selectFrom('audit_log')
      .selectAll()
      .orderBy('seq', 'desc')
      .limit(limit + 1)
    if (options.before !== undefined) q = q.where('seq', '<', options.before)
    if (options.actor !== undefined) q = q.where('actor', '=', options.actor)
    const rows = (await q.execute()).map(toRecord)
    const items = rows.slice(0, limit)
    return rows.length > limit ? { items, nextCursor: String(items.at(-1)!.seq) } : { items }
  }

  /** Walks the whole chain: a record removed, inserted, reordered or edited is named. */
  async verify(): Promise<AuditVerifyReport> {
    const problems: AuditVerifyReport['problems'] = []
    let prev = { seq: 0, hash: GENESIS }
    let records = 0
    const PAGE = 1000
    for (;;) {
      const rows = await this.#catalog.db
        .selectFrom('audit_log')
        .selectAll()
        .where('seq', '>', prev.seq)
        .orderBy('seq', 'asc')
        .limit(PAGE)
        .execute()
      for (const row of rows) {
        const r = toRecord(row)
        records++
        if (r.seq !== prev.seq + 1)
          problems.push({
            seq: r.seq,
            problem: `records ${prev.seq + 1}${r.seq - 1 > prev.seq + 1 ? `–${r.seq - 1}` : ''} are missing before it`,
          })
        if (r.prevHash !== prev.hash)
          problems.push({ seq: r.seq, problem: 'its link to the record before does not match that record' })
        if (hashOf(r) !== r.hash)
          problems.push({ seq: r.seq, problem: 'its content does not match its hash (edited)' })
        prev = { seq: r.seq, hash: r.hash }
      }
      if (rows.length < PAGE) break
    }
    const head = await this.#catalog.getSetting(HEAD_SETTING)
    if (head !== undefined) {
      const [seqText, hash] = head.split(':')
      const seq = Number(seqText)
      if (seq > prev.seq)
        problems.push({
          seq,
          problem: `the log ends at record ${prev.seq}: the records after it are missing`,
        })
      else if (seq === prev.seq && hash !== prev.hash)
        problems.push({ seq, problem: 'the last record is not the one last written' })
    } else if (records > 0) {
      problems.push({ seq: prev.seq, problem: 'the record of the last append is missing' })
    }
    return { ok: problems.length === 0, records, problems }
  }
}

function hashOf(r: AuditRecord): string {
  const body = JSON.stringify([
    r.seq,
    r.time,
    r.actor,
    r.roles,
    r.client,
    r.action,
    r.target,
    r.result,
    r.status,
    r.details,
  ])
  return createHash('sha256').update(`${r.prevHash}\n${body}`).digest('hex')
}

function toRecord(row: AuditLogTable): AuditRecord {
  return {
    seq: Number(row.seq),
    time: row.time,
    actor: row.actor,
    roles: parseJson(row.roles) as string[],
    client: row.client,
    action: row.action,
    target: row.target,
    result: row.result as AuditRecord['result'],
    status: Number(row.status),
    details: parseJson(row.details_json) as Record<string, unknown>,
    prevHash: row.prev_hash,
    hash: row.hash,
  }
}

/** A stored JSON column; text that is not JSON any more (an edit) is kept as it is, so its hash fails. */
function parseJson(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}
