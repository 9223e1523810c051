import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { Validator } from '@seriousme/openapi-schema-validator'
import { STATIC_ROUTES } from '../src/auth/index.js'
import { startServiceIn } from './_in-process.js'
import { apiFetch } from './_service.js'

// The management API's document (/api/v1/openapi.json) as a client reads it from a running service:
// valid OpenAPI, every route the app serves in it, every body and every 2xx JSON answer with a real
// schema, one error body, one list envelope.

type Schema = Record<string, unknown>
interface Operation {
  parameters?: { name: string; in: string }[]
  requestBody?: { content?: Record<string, { schema?: Schema }> }
  responses: Record<string, { content?: Record<string, { schema?: Schema }> }>
}
interface Doc {
  paths: Record<string, Record<string, Operation>>
  components?: { schemas?: Record<string, Schema> }
}

/** POST routes that take no body at all (an action on the resource the path names). */
const BODYLESS = new Set([
  'post /api/v1/vaults/{vault}/gc',
  'post /api/v1/jobs/{job}/cancel',
  'post /api/v1/diskstore/compact',
  'post /api/v1/auth/logout',
])

/** The document's own address: the one route it does not describe. */
const DOC_ROUTE = 'get /api/v1/openapi.json'

const METHODS = ['get', 'put', 'post', 'patch', 'delete']

/** Resolves a local `$ref` of the document. */
function resolveRef(doc: Doc, s: Schema): Schema {
  const ref = s.$ref
  if (typeof ref !== 'string') return s
  const name = ref.replace('#/components/schemas/', '')
  const target = doc.components?.schemas?.[name]
  assert.ok(target, `${ref} names a schema of the document`)
  return target
}

/**
 * Places in a schema that say nothing of their shape: an object without properties or typed values,
 * or an empty schema. A free-form field is allowed only when its description says what it holds; the
 * top of a body never is.
 */
function untyped(doc: Doc, schema: Schema, where: string, top: boolean, seen = new Set<Schema>()): string[] {
  const s = resolveRef(doc, schema)
  if (seen.has(s)) return []
  seen.add(s)
  const out: string[] = []
  const kids: [string, Schema][] = []
  for (const k of ['anyOf', 'oneOf', 'allOf'] as const)
    for (const [i, sub] of ((s[k] as Schema[] | undefined) ?? []).entries())
      kids.push([`${where}.${k}[${i}]`, sub])
  for (const [name, sub] of Object.entries((s.properties as Record<string, Schema> | undefined) ?? {}))
    kids.push([`${where}.${name}`, sub])
  if (s.items && typeof s.items === 'object' && !Array.isArray(s.items))
    kids.push([`${where}[]`, s.items as Schema])
  for (const [i, sub] of ((s.prefixItems as Schema[] | undefined) ?? []).entries())
    kids.push([`${where}[${i}]`, sub])
  const extra = s.additionalProperties
  const typedExtra =
    typeof extra === 'object' && extra !== null && Object.keys(extra).some((k) => k !== 'description')
  if (typedExtra) kids.push([`${where}{}`, extra as Schema])
  const shaped =
    s.type !== undefined ||
    s.enum !== undefined ||
    s.const !== undefined ||
    kids.length > 0 ||
    s.format === 'binary'
  const bareObject = s.type === 'object' && s.properties === undefined && !typedExtra
  if (!shaped || bareObject) {
    if (top || typeof s.description !== 'string' || s.description.length < 10)
      out.push(`${where} has no shape${top ? ' (at the top of a body)' : ' and no description'}`)
  }
  for (const [w, sub] of kids) out.push(...untyped(doc, sub, w, false, seen))
  return out
}

describe('the OpenAPI document of the management API', () => {
  it('is valid OpenAPI and documents every route the service serves, with a schema for every body and answer', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cairn-openapi-'))
    const service = await startServiceIn(dir)
    try {
      const res = await apiFetch(`${service.listeners.api}/api/v1/openapi.json`)
      assert.equal(res.status, 200)
      const doc = (await res.json()) as Doc

      const result = await new Validator().validate(doc as unknown as Record<string, unknown>)
      assert.deepEqual(result.errors, undefined, JSON.stringify(result.errors, null, 2))
      assert.equal(result.valid, true)

      // Every route of the app's own table (not the document) is documented, and nothing else is.
      const served = new Set(
        service.apiRoutes.map((r) => `${r.method.toLowerCase()} ${r.path.replace(/:(\w+)/g, '{$1}')}`),
      )
      assert.ok(served.has(DOC_ROUTE), 'the route table is read (it holds the document route)')
      assert.ok(served.size > 60, `the route table holds every route (${served.size})`)
      const documented = new Set(
        Object.entries(doc.paths).flatMap(([path, ops]) =>
          Object.keys(ops)
            .filter((m) => METHODS.includes(m))
            .map((m) => `${m} ${path}`),
        ),
      )
      // The portal's static files are served by the same app but are not API routes.
      const statics = new Set(STATIC_ROUTES.map((r) => r.toLowerCase()))
      assert.ok(
        [...statics].every((r) => served.has(r)),
        'the portal routes are served',
      )
      const undocumented = [...served].filter((r) => r !== DOC_ROUTE && !statics.has(r) && !documented.has(r))
      assert.deepEqual(undocumented, [], 'every route the service serves is in openapi.json')
      const unserved = [...documented].filter((r) => !served.has(r))
      assert.deepEqual(unserved, [], 'openapi.json documents only routes the service serves')

      const problems: string[] = []
      const errorSchemas = new Set<string>()
      for (const [path, ops] of Object.entries(doc.paths)) {
        for (const [method, op] of Object.entries(ops)) {
          if (!METHODS.includes(method)) continue
          const name = `${method} ${path}`
          // A body: described with a schema of its shape, unless the route takes none.
          if (['post', 'put', 'patch'].includes(method) && !BODYLESS.has(name)) {
            const content = op.requestBody?.content
            if (!content || Object.keys(content).length === 0)
              problems.push(`${name}: no request body schema`)
            for (const [type, c] of Object.entries(content ?? {})) {
              if (!c.schema) problems.push(`${name}: ${type} body without schema`)
              else if (type === 'application/json')
                problems.push(...untyped(doc, c.schema, `${name} body`, true))
            }
          }
          if (BODYLESS.has(name) && op.requestBody)
            problems.push(`${name}: listed as bodyless but takes a body`)
          for (const [status, r] of Object.entries(op.responses)) {
            const jsonSchema = r.content?.['application/json']?.schema
            if (/^2\d\d$/.test(status)) {
              if (status !== '204' && !r.content)
                problems.push(`${name} ${status}: an answer without content`)
              if (jsonSchema) problems.push(...untyped(doc, jsonSchema, `${name} ${status}`, true))
              // One list envelope: items and nextCursor, paged by limit and cursor.
              const answer = jsonSchema ? resolveRef(doc, jsonSchema) : undefined
              const props = (answer?.properties ?? {}) as Record<string, Schema>
              if ('value' in props) problems.push(`${name} ${status}: a "value" list; lists answer "items"`)
              if (method === 'get' && props.items && resolveRef(doc, props.items).type === 'array') {
                if (!props.nextCursor) problems.push(`${name}: a list without nextCursor`)
                const params = new Set(
                  (op.parameters ?? []).filter((p) => p.in === 'query').map((p) => p.name),
                )
                if (!params.has('limit') || !params.has('cursor'))
                  problems.push(`${name}: a list without ?limit=&cursor=`)
              }
            } else if (/^[45]\d\d$|^default$/.test(status)) {
              const ref = jsonSchema?.$ref
              if (typeof ref !== 'string')
                problems.push(`${name} ${status}: an error answer that is not the Error schema`)
              else errorSchemas.add(ref)
            }
          }
        }
      }
      assert.deepEqual(problems, [])
      // One error body, named once.
      assert.deepEqual([...errorSchemas], ['#/components/schemas/Error'])
      // Whatever carries an error (the error body, a failed job) carries the one ErrorDetail, no copy.
      const errorFields = Object.entries(doc.components?.schemas ?? {}).flatMap(([n, s]) => {
        const field = ((s.properties ?? {}) as Record<string, Schema>).error
        return field ? [[n, field.$ref]] : []
      })
      assert.ok(errorFields.some(([n]) => n === 'Error'))
      for (const [n, ref] of errorFields) assert.equal(ref, '#/components/schemas/ErrorDetail', `${n}.error`)
    } finally {
      await service.stop()
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('the shape check finds a bare object, a bare list item and an undescribed free-form field', () => {
    const doc: Doc = {
      paths: {},
      components: { schemas: { Loose: { type: 'object', additionalProperties: {} } } },
    }
    assert.ok(untyped(doc, { $ref: '#/components/schemas/Loose' }, 'body', true).length > 0)
    assert.ok(
      untyped(doc, { type: 'object', properties: { value: { type: 'array', items: {} } } }, 'answer', true)
        .length > 0,
    )
    assert.ok(
      untyped(doc, { type: 'object', properties: { config: { type: 'object' } } }, 'answer', true).length > 0,
    )
    assert.deepEqual(
      untyped(
        doc,
        {
          type: 'object',
          properties: {
            config: { type: 'object', additionalProperties: {}, description: 'As the VM owner wrote it' },
            tags: { type: 'object', additionalProperties: { type: 'string' } },
          },
        },
        'answer',
        true,
      ),
      [],
    )
  })
})
