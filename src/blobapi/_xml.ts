// A small XML writer for the blob API's answers (lists, page ranges, errors). Requests carry no XML.

/** Escapes text for an XML element or attribute. */
export function xmlEscape(text: string): string {
  return text.replace(/[&<>"']/g, (c) =>
    c === '&' ? '&amp;' : c === '<' ? '&lt;' : c === '>' ? '&gt;' : c === '"' ? '&quot;' : '&apos;',
  )
}

/** A child of an element: text, nested elements, or nothing (an empty element). */
export type XmlContent = string | number | boolean | XmlNode[] | undefined

/** One element: name, optional attributes, content. */
export interface XmlNode {
  name: string
  attrs?: Record<string, string>
  content: XmlContent
}

/** Shorthand for an element. */
export function el(name: string, content: XmlContent, attrs?: Record<string, string>): XmlNode {
  return attrs === undefined ? { name, content } : { name, content, attrs }
}

function write(node: XmlNode, out: string[]): void {
  const attrs = Object.entries(node.attrs ?? {})
    .map(([k, v]) => ` ${k}="${xmlEscape(v)}"`)
    .join('')
  const c = node.content
  if (c === undefined || c === '' || (Array.isArray(c) && c.length === 0)) {
    out.push(`<${node.name}${attrs} />`)
    return
  }
  out.push(`<${node.name}${attrs}>`)
  if (Array.isArray(c)) for (const child of c) write(child, out)
  else out.push(xmlEscape(String(c)))
  out.push(`</${node.name}>`)
}

/** A complete document with the XML declaration Azure sends. */
export function xmlDocument(root: XmlNode): string {
  const out = ['<?xml version="1.0" encoding="utf-8"?>']
  write(root, out)
  return out.join('')
}
