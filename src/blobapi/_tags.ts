// Blob index tags: the rules of a tag set, its XML and `x-ms-tags` forms, and the tag expressions of
// `x-ms-if-tags` (=, <>, <, <=, >, >=, AND, OR, parentheses) and of Find Blobs by Tags' `where` (=, <,
// <=, >, >=, AND, and `@container` at account level). Values compare as strings, byte by byte, as Azure
// compares them.
import type { CairnError } from '../util/index.js'
import { el, type XmlNode } from './_xml.js'
import { badHeader, badQuery, blobError } from './blob-errors.js'

/** A blob's tags, key to value. */
export type Tags = Record<string, string>

/** The most tags one blob carries. */
export const MAX_TAGS = 10

const TAG_TEXT = /^[a-zA-Z0-9 +\-./:=_]*$/

/** Checks a tag set against Azure's rules: at most 10, keys 1–128 and values 0–256 characters. */
export function checkTags(tags: Tags): Tags {
  const keys = Object.keys(tags)
  const bad = (why: string): CairnError => blobError('InvalidTag', `Cannot set the tags: ${why}`)
  if (keys.length > MAX_TAGS) throw bad(`${keys.length} tags given, a blob holds at most ${MAX_TAGS}`)
  for (const k of keys) {
    const v = tags[k]!
    if (k.length < 1 || k.length > 128) throw bad(`tag key "${k}" is not 1 to 128 characters long`)
    if (v.length > 256) throw bad(`the value of tag "${k}" is longer than 256 characters`)
    if (!TAG_TEXT.test(k) || !TAG_TEXT.test(v))
      throw bad(`tag "${k}" holds a character other than letters, digits, space and + - . / : = _`)
  }
  return tags
}

/** Tags from an `x-ms-tags` header (`key=value&key2=value2`, URL-encoded). */
export function headerTags(value: string): Tags {
  const out: Tags = {}
  for (const part of value.split('&')) {
    if (part === '') continue
    const eq = part.indexOf('=')
    let k: string
    let v: string
    try {
      k = decodeURIComponent((eq < 0 ? part : part.slice(0, eq)).replace(/\+/g, ' '))
      v = decodeURIComponent((eq < 0 ? '' : part.slice(eq + 1)).replace(/\+/g, ' '))
    } catch {
      throw badHeader('x-ms-tags', value, 'not URL-encoded key=value pairs')
    }
    if (k in out) throw badHeader('x-ms-tags', value, `tag "${k}" is given twice`)
    out[k] = v
  }
  return checkTags(out)
}

function unescapeXml(s: string): string {
  return s.replace(
    /&(lt|gt|amp|quot|apos|#(\d+)|#x([0-9a-fA-F]+));/g,
    (_m, name: string, dec?: string, hex?: string) => {
      if (dec !== undefined) return String.fromCodePoint(Number(dec))
      if (hex !== undefined) return String.fromCodePoint(Number.parseInt(hex, 16))
      return { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" }[name] ?? ''
    },
  )
}

/** Tags from a Set Blob Tags body (`<Tags><TagSet><Tag><Key>…</Key><Value>…</Value></Tag>…`). */
export function bodyTags(xml: string): Tags {
  const invalid = (why: string) => blobError('InvalidXmlDocument', `Cannot read the tags: ${why}`)
  const doc = xml
    .replace(/^\uFEFF/, '')
    .replace(/^\s*<\?xml[^>]*\?>/, '')
    .trim()
  const m =
    /^<Tags>\s*<TagSet>([\s\S]*)<\/TagSet>\s*<\/Tags>$/.exec(doc) ??
    /^<Tags>\s*<TagSet\s*\/>\s*<\/Tags>$/.exec(doc)
  if (m === null) throw invalid('the body is not <Tags><TagSet>…</TagSet></Tags>')
  const out: Tags = {}
  let rest = (m[1] ?? '').trim()
  const tag = /^<Tag>\s*<Key>([^<]*)<\/Key>\s*(?:<Value>([^<]*)<\/Value>|<Value\s*\/>)\s*<\/Tag>\s*/
  while (rest !== '') {
    const t = tag.exec(rest)
    if (t === null) throw invalid('a <Tag> is not <Key>…</Key><Value>…</Value>')
    const k = unescapeXml(t[1]!)
    if (k in out) throw blobError('InvalidTag', `Cannot set the tags: tag "${k}" is given twice`)
    out[k] = unescapeXml(t[2] ?? '')
    rest = rest.slice(t[0].length)
  }
  return checkTags(out)
}

/** The `<Tags>` element of a tag set. */
export function tagsXml(tags: Tags): XmlNode {
  return el('Tags', [
    el(
      'TagSet',
      Object.entries(tags).map(([k, v]) => el('Tag', [el('Key', k), el('Value', v)])),
    ),
  ])
}

// ------------------------------------------------------------------ expressions

type Op = '=' | '<>' | '<' | '<=' | '>' | '>='

/** A parsed tag expression. */
export type TagExpression =
  | { kind: 'compare'; key: string; op: Op; value: string; container: boolean }
  | { kind: 'and' | 'or'; left: TagExpression; right: TagExpression }

interface Grammar {
  ops: readonly Op[]
  or: boolean
  parentheses: boolean
  container: boolean
}

/** `x-ms-if-tags`: every operator, AND, OR and parentheses. */
const CONDITION: Grammar = {
  ops: ['=', '<>', '<=', '>=', '<', '>'],
  or: true,
  parentheses: true,
  container: false,
}
/** Find Blobs by Tags: =, <, <=, >, >= joined by AND; `@container` where the whole account is searched. */
const FILTER = (container: boolean): Grammar => ({
  ops: ['=', '<=', '>=', '<', '>'],
  or: false,
  parentheses: false,
  container,
})

type Token = { t: 'key' | 'value' | 'op' | 'word' | 'open' | 'close' | 'container'; v: string }

function tokenize(text: string, fail: (why: string) => CairnError): Token[] {
  const out: Token[] = []
  let i = 0
  while (i < text.length) {
    const c = text[i]!
    if (c === ' ' || c === '\t') {
      i++
    } else if (c === '"' || c === "'") {
      const end = text.indexOf(c, i + 1)
      if (end < 0) throw fail(`the quote at ${i} is not closed`)
      out.push({ t: c === '"' ? 'key' : 'value', v: text.slice(i + 1, end) })
      i = end + 1
    } else if (c === '(' || c === ')') {
      out.push({ t: c === '(' ? 'open' : 'close', v: c })
      i++
    } else if ('<>='.includes(c)) {
      const two = text.slice(i, i + 2)
      const op = ['<=', '>=', '<>'].includes(two) ? two : c
      out.push({ t: 'op', v: op })
      i += op.length
    } else if (c === '@') {
      const m = /^@container\b/i.exec(text.slice(i))
      if (m === null) throw fail(`"${text.slice(i, i + 12)}" is not @container`)
      out.push({ t: 'container', v: '@container' })
      i += m[0].length
    } else {
      const m = /^[A-Za-z0-9_]+/.exec(text.slice(i))
      if (m === null) throw fail(`unexpected "${c}" at ${i}`)
      out.push({ t: 'word', v: m[0] })
      i += m[0].length
    }
  }
  return out
}

function parse(text: string, g: Grammar, fail: (why: string) => CairnError): TagExpression {
  const tokens = tokenize(text, fail)
  let at = 0
  const peek = () => tokens[at]
  const word = (w: string) => peek()?.t === 'word' && peek()!.v.toUpperCase() === w
  let conditions = 0
  const primary = (): TagExpression => {
    const tok = tokens[at++]
    if (tok === undefined) throw fail('the expression ends too early')
    if (tok.t === 'open') {
      if (!g.parentheses) throw fail('parentheses are not allowed here')
      const inner = disjunction()
      if (tokens[at++]?.t !== 'close') throw fail('a parenthesis is not closed')
      return inner
    }
    let key: string
    let container = false
    if (tok.t === 'key') key = tok.v
    else if (tok.t === 'container' && g.container) {
      key = '@container'
      container = true
    } else throw fail(`expected a "key" in double quotes, found ${tok.v}`)
    if (!container && (key.length < 1 || key.length > 128 || !TAG_TEXT.test(key)))
      throw fail(`"${key}" is not a tag key`)
    const op = tokens[at++]
    if (op?.t !== 'op' || !(g.ops as readonly string[]).includes(op.v))
      throw fail(`expected one of ${g.ops.join(' ')} after "${key}"`)
    if (container && op.v !== '=') throw fail('@container compares with = only')
    const value = tokens[at++]
    if (value?.t !== 'value') throw fail(`expected a 'value' in single quotes after "${key}" ${op.v}`)
    if (value.v.length > 256 || !TAG_TEXT.test(value.v)) throw fail(`'${value.v}' is not a tag value`)
    if (++conditions > 10) throw fail('more than 10 conditions')
    return { kind: 'compare', key, op: op.v as Op, value: value.v, container }
  }
  const conjunction = (): TagExpression => {
    let left = primary()
    while (word('AND')) {
      at++
      left = { kind: 'and', left, right: primary() }
    }
    return left
  }
  const disjunction = (): TagExpression => {
    let left = conjunction()
    while (word('OR')) {
      if (!g.or) throw fail('OR is not allowed here')
      at++
      left = { kind: 'or', left, right: conjunction() }
    }
    return left
  }
  const e = disjunction()
  if (at !== tokens.length) throw fail(`unexpected ${tokens[at]!.v}`)
  return e
}

/** Parses an `x-ms-if-tags` (or `x-ms-source-if-tags`) header. */
export function parseTagCondition(value: string, header = 'x-ms-if-tags'): TagExpression {
  return parse(value, CONDITION, (why) => badHeader(header, value, `not a tag condition: ${why}`))
}

/** Parses the `where` of Find Blobs by Tags (`@container` allowed when searching the whole account). */
export function parseTagFilter(value: string, account: boolean): TagExpression {
  return parse(value, FILTER(account), (why) => badQuery('where', value, `not a tag filter: ${why}`))
}

function compare(a: string, op: Op, b: string): boolean {
  switch (op) {
    case '=':
      return a === b
    case '<>':
      return a !== b
    case '<':
      return a < b
    case '<=':
      return a <= b
    case '>':
      return a > b
    case '>=':
      return a >= b
  }
}

/** True when a blob's tags (and container) satisfy the expression; a missing tag satisfies no comparison. */
export function matchesTags(e: TagExpression, tags: Tags, container = ''): boolean {
  switch (e.kind) {
    case 'and':
      return matchesTags(e.left, tags, container) && matchesTags(e.right, tags, container)
    case 'or':
      return matchesTags(e.left, tags, container) || matchesTags(e.right, tags, container)
    case 'compare': {
      if (e.container) return container === e.value
      const v = tags[e.key]
      return v !== undefined && compare(v, e.op, e.value)
    }
  }
}

/** The tag keys an expression names (Find Blobs answers those tags of each blob). */
export function expressionKeys(e: TagExpression): string[] {
  if (e.kind === 'compare') return e.container ? [] : [e.key]
  return [...new Set([...expressionKeys(e.left), ...expressionKeys(e.right)])]
}
