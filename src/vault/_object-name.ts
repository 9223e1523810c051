import { CairnError } from '../util/index.js'

/**
 * Checks that `name` is a plain relative object name (`/`-separated, no empty, `.` or `..` part, no
 * NUL): every backend refuses the same names, so a vault moves between backends unchanged.
 */
export function checkObjectName(name: string): void {
  if (name.split('/').some((p) => p === '' || p === '.' || p === '..') || name.includes('\0')) {
    throw new CairnError(
      'InvalidRequest',
      `Cannot use vault object name "${name}": it is not a plain relative name`,
    )
  }
}
