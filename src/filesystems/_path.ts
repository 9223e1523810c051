/**
 * The components of a path inside a file system, normalized so that nothing leaves the root: `..` at the
 * root stays at the root, empty and `.` components vanish, a leading `/` changes nothing.
 */
export function pathComponents(path: string): string[] {
  const out: string[] = []
  for (const part of path.split('/')) {
    if (part === '' || part === '.') continue
    if (part === '..') out.pop()
    else out.push(part)
  }
  return out
}

/** The normalized absolute form of a path: `/a/b`, or `/` for the root. */
export function normalizePath(path: string): string {
  return `/${pathComponents(path).join('/')}`
}

/** A child's path from its parent's. */
export function joinPath(parent: string, name: string): string {
  return parent === '/' ? `/${name}` : `${parent}/${name}`
}
