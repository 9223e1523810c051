import { CairnError } from '../util/index.js'

/** A damaged structure: bad magic or checksum, a loop, a pointer past the volume end. */
export function corrupt(message: string): CairnError {
  return new CairnError('FileSystemCorrupt', message)
}

/** A file system or feature the readers do not handle. */
export function unsupported(message: string): CairnError {
  return new CairnError('FileSystemUnsupported', message)
}

export function notFound(path: string): CairnError {
  return new CairnError('FileSystemPathNotFound', `Cannot find "${path}": no such file or directory`)
}

export function wrongType(message: string): CairnError {
  return new CairnError('FileSystemWrongType', message)
}
