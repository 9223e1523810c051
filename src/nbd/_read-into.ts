import type { Socket } from 'node:net'

/**
 * Makes `socket` read into buffers the caller picks instead of emitting 'data' with a fresh 64 KiB
 * buffer per read: after each read, `onRead(buffer, bytes)` is called, then `next()` names the
 * buffer the following read goes into (never empty). This lets an NBD write payload arrive straight
 * in the buffer handed to the disk store, without a copy or an allocation per read.
 *
 * It is Node's documented `onread` socket option, which `net.Server` does not offer for the sockets
 * it accepts; it is switched on here through the same internal fields that option sets (Node 18–22).
 * Returns false, changing nothing, when this Node does not have them: the caller then uses 'data'.
 * Pausing and resuming the socket work as usual; end and errors are reported as usual.
 */
export function readInto(
  socket: Socket,
  next: () => Buffer,
  onRead: (buffer: Buffer, bytes: number) => void,
): boolean {
  const symbols = Object.getOwnPropertySymbols(socket)
  const find = (name: string) => symbols.find((s) => s.description === name)
  const kBuffer = find('kBuffer')
  const kBufferCb = find('kBufferCb')
  const kBufferGen = find('kBufferGen')
  const fields = socket as unknown as Record<symbol, unknown> & {
    _handle?: { useUserBuffer?: (buffer: Uint8Array) => void } | null
  }
  const handle = fields._handle
  if (
    kBuffer === undefined ||
    kBufferCb === undefined ||
    kBufferGen === undefined ||
    fields[kBuffer] !== null ||
    socket.readableLength > 0 ||
    handle === null ||
    handle === undefined ||
    typeof handle.useUserBuffer !== 'function'
  ) {
    return false
  }
  const first = next()
  fields[kBuffer] = first
  fields[kBufferGen] = next
  fields[kBufferCb] = (bytes: number, buffer: Buffer) => {
    onRead(buffer, bytes)
  }
  handle.useUserBuffer(first)
  return true
}
