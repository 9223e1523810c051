import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
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
