import assert from 'node:assert/strict'
import type { RunningService } from './_service.js'

/** Sends one API request as the test's admin; answers status and parsed body (raw bytes when not JSON). */
export async function call(
  svc: RunningService,
  method: string,
  path: string,
  body?: unknown,
  // biome-ignore lint/suspicious/noExplicitAny: tests read answers of many shapes
): Promise<{ status: number; body: any }> {
  const headers: Record<string, string> = { authorization: `Bearer ${svc.token}` }
  let payload: RequestInit['body']
  if (body instanceof Uint8Array) {
    headers['content-type'] = 'application/octet-stream'
    payload = body as Uint8Array<ArrayBuffer>
  } else if (body !== undefined) {
    headers['content-type'] = 'application/json'
    payload = JSON.stringify(body)
  }
  const res = await fetch(`${svc.url}${path}`, { method, headers, ...(payload ? { body: payload } : {}) })
  const type = res.headers.get('content-type') ?? ''
  if (res.status === 204) return { status: 204, body: undefined }
  if (type.includes('application/json')) return { status: res.status, body: await res.json() }
  return { status: res.status, body: new Uint8Array(await res.arrayBuffer()) }
}

/** Sends a request that must answer `status` (default: any 2xx); answers its body. */
export async function ok(
  svc: RunningService,
  method: string,
  path: string,
  body?: unknown,
  // biome-ignore lint/suspicious/noExplicitAny: tests read answers of many shapes
): Promise<any> {
  const r = await call(svc, method, path, body)
  assert.ok(r.status >= 200 && r.status < 300, `${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`)
  return r.body
}

/** A deterministic byte pattern: `size` bytes, different for each `seed`. */
export function pattern(size: number, seed: number): Uint8Array {
  const b = new Uint8Array(size)
  let x = seed * 2654435761
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0
    b[i] = x >>> 24
  }
  return b
}

/** Creates account `acct`, container `vms` and the disks of a VM (`NAME-os`, `NAME-data`) with data written. */
export async function seedDisks(svc: RunningService, vm: string, size = 4 * 1024 * 1024): Promise<void> {
  await call(svc, 'POST', '/api/v1/accounts', { name: 'acct' })
  await call(svc, 'POST', '/api/v1/accounts/acct/containers', { name: 'vms' })
  for (const [i, d] of [`${vm}-os`, `${vm}-data`].entries()) {
    const base = `/api/v1/accounts/acct/containers/vms/disks/${d}`
    await ok(svc, 'PUT', base, { size })
    await ok(svc, 'PUT', `${base}/pages?offset=0`, pattern(64 * 1024, i + 1))
    await ok(svc, 'PUT', `${base}/pages?offset=${size - 64 * 1024}`, pattern(64 * 1024, i + 11))
  }
}
