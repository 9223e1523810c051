// The built portal (dist/portal, made by `npm run build`) held in memory: each file with its media
// type, an ETag, and a gzip copy when that is smaller. docs/portal.md, "How it is served".
import { createHash } from 'node:crypto'
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { extname, join } from 'node:path'
import { gzipSync } from 'node:zlib'

/** One file of the portal as it is answered. */
export interface StaticFile {
  body: Uint8Array
  gzip?: Uint8Array
  type: string
  etag: string
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.json': 'application/json',
  '.txt': 'text/plain; charset=utf-8',
  '.woff2': 'font/woff2',
}

/** The files of a built portal folder: `index.html` and `assets/NAME` (names carry a content hash). */
export class StaticFiles {
  readonly #files = new Map<string, StaticFile>()

  /** Reads `folder` (its index.html and assets/); a missing folder gives an empty set. */
  constructor(folder: string) {
    if (!existsSync(join(folder, 'index.html'))) return
    this.#add('index.html', join(folder, 'index.html'))
    const assets = join(folder, 'assets')
    if (!existsSync(assets)) return
    for (const name of readdirSync(assets)) {
      const path = join(assets, name)
      if (statSync(path).isFile()) this.#add(`assets/${name}`, path)
    }
  }

  /** The file at `name` (`index.html`, `assets/index-3f2a.js`), or undefined. */
  get(name: string): StaticFile | undefined {
    return this.#files.get(name)
  }

  /** Whether the portal was built (index.html exists). */
  get built(): boolean {
    return this.#files.has('index.html')
  }

  #add(name: string, path: string): void {
    const type = TYPES[extname(name).toLowerCase()] ?? 'application/octet-stream'
    const body = new Uint8Array(readFileSync(path))
    const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`
    const file: StaticFile = { body, type, etag }
    if (!type.startsWith('image/png') && !type.startsWith('font/') && body.length > 512) {
      const gz = new Uint8Array(gzipSync(body, { level: 9 }))
      if (gz.length < body.length) file.gzip = gz
    }
    this.#files.set(name, file)
  }
}
