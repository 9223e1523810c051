import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, posix, relative, resolve, sep } from 'node:path'
import { describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { checkImports, LAYERS } from './_import-rules.js'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..')
const srcDir = join(root, 'src')

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sourceFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  )
}

describe('architecture', () => {
  const files = new Map(sourceFiles(srcDir).map((f) => [relative(srcDir, f), readFileSync(f, 'utf8')]))

  it('every component folder has an index.ts and a known layer', () => {
    const components = new Set(
      [...files.keys()].map((f) => f.split('/')[0]!).filter((c) => !c.endsWith('.ts')),
    )
    for (const c of components) {
      assert.ok(files.has(`${c}/index.ts`), `src/${c} has no index.ts`)
      assert.ok(c in LAYERS, `src/${c} is not placed in the dependency picture (test/_import-rules.ts)`)
    }
  })

  it('imports point down the dependency picture, through index.ts, without cycles', () => {
    assert.deepEqual(checkImports(files), [])
  })

  it('an upward import is caught', () => {
    const bad = new Map(files)
    bad.set('util/_bad.ts', "import { x } from '../cli/index.js'\n")
    assert.ok(checkImports(bad).some((p) => p.includes('upward')))
  })

  it('an import cycle is caught', () => {
    const bad = new Map(files)
    bad.set('util/_a.ts', "import { b } from './_b.js'\n")
    bad.set('util/_b.ts', "import { a } from './_a.js'\n")
    assert.ok(checkImports(bad).some((p) => p.includes('cycle')))
  })
})

describe('the cairn command starts light', () => {
  // Users script the CLI, so a call must not load the service's components (SQLite, Hono, the
  // engines) before it needs them: those are imported lazily by the commands that run them.
  const STATIC_IMPORT = /(?:^|\n)\s*(?:import|export)\s(?!type\s)[^'"]*?from\s*['"](\.[^'"]+)['"]/g
  const closure = (files: Map<string, string>, start: string): Set<string> => {
    const seen = new Set<string>()
    const todo = [start]
    while (todo.length > 0) {
      const file = todo.pop()!
      if (seen.has(file) || !files.has(file)) continue
      seen.add(file)
      for (const m of files.get(file)!.matchAll(STATIC_IMPORT)) {
        todo.push(posix.normalize(posix.join(posix.dirname(file), m[1]!)).replace(/\.js$/, '.ts'))
      }
    }
    return seen
  }

  it('the CLI loads only util at start, never catalog, the engines, the services or the servers', () => {
    const files = new Map(
      sourceFiles(srcDir).map((f) => [relative(srcDir, f).split(sep).join('/'), readFileSync(f, 'utf8')]),
    )
    const loaded = [...closure(files, 'cli/index.ts')]
    const heavy = loaded.filter((f) => !f.startsWith('cli/') && !f.startsWith('util/'))
    assert.deepEqual(heavy, [])
  })
})
