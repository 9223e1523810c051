import { posix } from 'node:path'

/**
 * The dependency picture of VISION.md as layers: a component may import only components of a lower
 * layer, and only through their index.ts.
 */
export const LAYERS: Record<string, number> = {
  util: 0,
  catalog: 1,
  auth: 2,
  diskstore: 2,
  vault: 2,
  filesystems: 2,
  sites: 2,
  protection: 3,
  replication: 3,
  filerecovery: 3,
  agent: 3,
  api: 4,
  blobapi: 4,
  nbd: 4,
  portal: 4,
  server: 5,
  cli: 6,
}

const IMPORT_RE =
  /(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g

/** Returns one line per broken rule; files maps paths relative to src/ to their text. */
export function checkImports(files: Map<string, string>): string[] {
  const problems: string[] = []
  const graph = new Map<string, string[]>()
  for (const [file, text] of files) {
    const from = file.split('/')[0]!
    const edges: string[] = []
    for (const m of text.matchAll(IMPORT_RE)) {
      const spec = m[1] ?? m[2]!
      if (!spec.startsWith('.')) continue
      const target = posix.normalize(posix.join(posix.dirname(file), spec)).replace(/\.js$/, '.ts')
      edges.push(target)
      const to = target.split('/')[0]!
      if (to === from) continue
      const lf = LAYERS[from]
      const lt = LAYERS[to]
      if (lf === undefined || lt === undefined) {
        problems.push(`${file}: imports ${spec}, outside the dependency picture`)
      } else if (lt >= lf) {
        problems.push(`${file}: upward or sideways import of ${to} (layer ${lt}) from ${from} (layer ${lf})`)
      }
      if (target !== `${to}/index.ts`) problems.push(`${file}: imports ${spec}, not ${to}/index.ts`)
    }
    graph.set(file, edges)
  }
  // Cycles among files.
  const state = new Map<string, 1 | 2>()
  const visit = (f: string, path: string[]) => {
    if (state.get(f) === 2) return
    if (state.get(f) === 1) {
      problems.push(`import cycle: ${[...path.slice(path.indexOf(f)), f].join(' -> ')}`)
      return
    }
    state.set(f, 1)
    for (const t of graph.get(f) ?? []) visit(t, [...path, f])
    state.set(f, 2)
  }
  for (const f of graph.keys()) visit(f, [])
  return problems
}
