import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { describe, it } from 'node:test'
import { resolveConfig } from './config.js'

describe('resolveConfig', () => {
  it('uses the embedded defaults when nothing is given', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-config-'))
    try {
      const c = resolveConfig({ flags: { data: dir } })
      assert.equal(c.port, 7070)
      assert.equal(c.host, '127.0.0.1')
      assert.equal(c.logLevel, 'info')
      assert.equal(c.data, resolve(dir))
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('ranks flags over environment over the config file over defaults', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-config-'))
    try {
      writeFileSync(
        join(dir, 'cairn.json'),
        JSON.stringify({ port: 1111, host: '0.0.0.0', logLevel: 'warn' }),
      )
      const env = { CAIRN_DATA: dir, CAIRN_PORT: '2222', CAIRN_HOST: '127.0.0.2' }
      const c = resolveConfig({ flags: { host: '127.0.0.3' }, env })
      assert.equal(c.host, '127.0.0.3')
      assert.equal(c.port, 2222)
      assert.equal(c.logLevel, 'warn')
      assert.equal(c.data, resolve(dir))
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('refuses a bad port, an unknown config key and an unreadable config file with ConfigInvalid', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-config-'))
    try {
      assert.throws(() => resolveConfig({ flags: { data: dir, port: 'x' } }), /ConfigInvalid|port/)
      writeFileSync(join(dir, 'bad.json'), JSON.stringify({ prot: 1 }))
      assert.throws(
        () => resolveConfig({ flags: { data: dir }, configFile: join(dir, 'bad.json') }),
        /unknown key "prot"/,
      )
      writeFileSync(join(dir, 'broken.json'), '{')
      assert.throws(
        () => resolveConfig({ flags: { data: dir }, configFile: join(dir, 'broken.json') }),
        (e: Error & { code?: string }) => e.code === 'ConfigInvalid',
      )
      assert.throws(
        () => resolveConfig({ flags: { data: dir }, configFile: join(dir, 'missing.json') }),
        /Cannot read/,
      )
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('vault keys come from repeated flags, CAIRN_VAULT_KEYS or the config file; malformed pairs are ConfigInvalid', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-config-'))
    try {
      const flags = resolveConfig({ flags: { data: dir, 'vault-key': ['main=/k/main', 'b=k/b'] } })
      assert.deepEqual(flags.vaultKeys, { main: '/k/main', b: resolve('k/b') })
      const env = resolveConfig({ flags: { data: dir }, env: { CAIRN_VAULT_KEYS: 'main=/k/m,other=/k/o' } })
      assert.deepEqual(env.vaultKeys, { main: '/k/m', other: '/k/o' })
      writeFileSync(
        join(dir, 'cairn.json'),
        JSON.stringify({ vaultKeys: { main: '/k/f' }, vaultKeyDir: '/k' }),
      )
      const file = resolveConfig({ flags: { data: dir } })
      assert.deepEqual(file.vaultKeys, { main: '/k/f' })
      assert.equal(file.vaultKeyDir, '/k')
      assert.equal(file.vaultOpenPacks, 32)
      for (const bad of [['main'], ['=x'], ['Main=/x'], ['a=/x', 'a=/y']]) {
        assert.throws(
          () => resolveConfig({ flags: { data: dir, 'vault-key': bad } }),
          (e: Error & { code?: string }) => e.code === 'ConfigInvalid' && /vault-key/.test(e.message),
          JSON.stringify(bad),
        )
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('reads the disk-store segment size as a size, and refuses one that is not whole 4 KiB pages from 1 MiB to 2 GiB', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-config-'))
    try {
      assert.equal(resolveConfig({ flags: { data: dir } }).diskSegmentSize, undefined)
      const flag = resolveConfig({ flags: { data: dir, 'disk-segment-size': '16MiB' } })
      assert.equal(flag.diskSegmentSize, 16 * 1024 * 1024)
      const env = resolveConfig({ flags: { data: dir }, env: { CAIRN_DISK_SEGMENT_SIZE: '1GiB' } })
      assert.equal(env.diskSegmentSize, 1024 ** 3)
      for (const bad of ['1000', '512KiB', '4GiB', '1MiB+1', 'big', '1048577']) {
        assert.throws(
          () => resolveConfig({ flags: { data: dir, 'disk-segment-size': bad } }),
          (e: Error & { code?: string }) => e.code === 'ConfigInvalid' && /disk-segment-size/.test(e.message),
          bad,
        )
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('gives each listener its own address, --host filling those not set, and reads allowed hosts as lists', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-config-'))
    try {
      const plain = resolveConfig({ flags: { data: dir } })
      assert.equal(plain.apiHost ?? plain.host, '127.0.0.1')
      assert.equal(plain.blobHost ?? plain.host, '127.0.0.1')
      assert.equal(plain.nbdHost ?? plain.host, '127.0.0.1')
      assert.equal(plain.blobMaxConnections, 1024)
      assert.equal(plain.nbdHandshakeTimeout, 30)
      writeFileSync(
        join(dir, 'cairn.json'),
        JSON.stringify({ apiAllowedHosts: ['Cairn.Example'], nbdHost: '10.0.0.4' }),
      )
      const c = resolveConfig({
        flags: { host: '0.0.0.0', 'api-host': '127.0.0.1', 'blob-max-connections': '50' },
        env: { CAIRN_DATA: dir, CAIRN_HTTP_HEADER_TIMEOUT: '0.5' },
      })
      assert.equal(c.host, '0.0.0.0')
      assert.equal(c.apiHost, '127.0.0.1')
      assert.equal(c.blobHost, undefined)
      assert.equal(c.nbdHost, '10.0.0.4')
      assert.deepEqual(c.apiAllowedHosts, ['cairn.example'])
      assert.equal(c.blobMaxConnections, 50)
      assert.equal(c.httpHeaderTimeout, 0.5)
      const env = resolveConfig({
        flags: { data: dir },
        env: { CAIRN_API_ALLOWED_HOSTS: 'a.example, b.example' },
      })
      assert.deepEqual(env.apiAllowedHosts, ['a.example', 'b.example'])
      const flags = resolveConfig({ flags: { data: dir, 'api-allowed-host': ['x.example'] } })
      assert.deepEqual(flags.apiAllowedHosts, ['x.example'])
      for (const bad of [
        { 'blob-max-connections': '0' },
        { 'nbd-handshake-timeout': '-1' },
        { 'http-idle-timeout': 'soon' },
        { 'api-allowed-host': ['bad name/with slash'] },
      ])
        assert.throws(
          () => resolveConfig({ flags: { data: dir, ...bad } }),
          (e: Error & { code?: string }) => e.code === 'ConfigInvalid',
        )
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('takes import and export roots from repeated flags, a ":"-separated variable or a config-file list, and none by default', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-config-'))
    try {
      const none = resolveConfig({ flags: { data: dir, 'import-root': [] } })
      assert.deepEqual([none.importRoots, none.exportRoots], [[], []])
      const flags = resolveConfig({ flags: { data: dir, 'import-root': ['/a', '/b'] } })
      assert.deepEqual(flags.importRoots, ['/a', '/b'])
      const env = resolveConfig({ flags: { data: dir }, env: { CAIRN_EXPORT_ROOTS: '/x:/y' } })
      assert.deepEqual(env.exportRoots, ['/x', '/y'])
      writeFileSync(join(dir, 'cairn.json'), JSON.stringify({ importRoots: ['/srv/images'] }))
      assert.deepEqual(resolveConfig({ flags: { data: dir } }).importRoots, ['/srv/images'])
      writeFileSync(join(dir, 'cairn.json'), JSON.stringify({ importRoots: '' }))
      assert.throws(() => resolveConfig({ flags: { data: dir } }), /a list of folders/)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('reads objectStores from the config file only, and refuses unknown keys and wrong types without echoing values', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-config-'))
    try {
      const stores = {
        azure: { accountKey: 'c2VjcmV0' },
        s3: { accessKeyId: 'id', secretAccessKey: 'hunter2', pathStyle: true },
        retry: { tries: 3 },
        maxSockets: 8,
      }
      writeFileSync(join(dir, 'cairn.json'), JSON.stringify({ objectStores: stores }))
      assert.deepEqual(resolveConfig({ flags: { data: dir } }).objectStores, stores)
      assert.equal(resolveConfig({ flags: { data: join(dir, 'none') } }).objectStores, undefined)
      for (const [bad, pattern] of [
        [{ s3: { secretAccesKey: 'hunter2' } }, /unknown key "s3.secretAccesKey"/],
        [{ s3: { secretAccessKey: 42 } }, /"s3.secretAccessKey" is a string/],
        [{ gcs: {} }, /unknown key "gcs"/],
        [{ s3: { pathStyle: 'hunter2' } }, /"s3.pathStyle" is a boolean/],
        ['hunter2', /expected an object/],
      ] as const) {
        writeFileSync(join(dir, 'cairn.json'), JSON.stringify({ objectStores: bad }))
        assert.throws(
          () => resolveConfig({ flags: { data: dir } }),
          (err: Error & { code?: string }) => {
            assert.equal(err.code, 'ConfigInvalid')
            assert.match(err.message, pattern)
            assert.doesNotMatch(err.message, /hunter2/)
            return true
          },
        )
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
