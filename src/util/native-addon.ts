// The project's native addons (native/*.c), built by `npm run build` into native/build/ at the package
// root (scripts/build-native.js). Each is optional: where one was not built (no C compiler), its user
// takes a JavaScript or WebAssembly way instead.
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)

/** native/build/NAME.node, or undefined where it was not built or does not load. */
export function nativeAddon<T>(name: string): T | undefined {
  try {
    // dist/src/util/ → native/build/ at the package root.
    return require(`../../../native/build/${name}.node`) as T
  } catch {
    return undefined
  }
}
