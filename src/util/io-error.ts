import { CairnError } from './cairn-error.js'

const WHY: Record<string, string> = {
  ENOENT: 'it does not exist',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EMFILE: 'the service has too many files open',
  ENFILE: 'the system has too many files open',
  EIO: 'the device reported an I/O error',
  ENOSPC: 'the file system is full',
  EDQUOT: 'the disk quota is exhausted',
  EROFS: 'the file system is read-only',
  EISDIR: 'it is a folder',
  ENOTDIR: 'a part of its path is not a folder',
  EBADF: 'its descriptor was closed',
  EINVAL: 'the system refused the request as invalid',
}

/**
 * A file-system error as a CairnError with a stable code (`IoError`) and a message naming what failed
 * and why; CairnErrors and non-system errors pass through unchanged.
 */
export function ioError(err: unknown, what: string): unknown {
  if (err instanceof CairnError) return err
  const code = (err as NodeJS.ErrnoException | undefined)?.code
  if (typeof code !== 'string' || !/^E[A-Z0-9]+$/.test(code)) return err
  return new CairnError('IoError', `${what}: ${WHY[code] ?? 'a system call failed'} (${code})`)
}
