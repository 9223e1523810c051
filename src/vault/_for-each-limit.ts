/**
 * Runs `fn` over items with at most `width` at once. After the first failure no new item starts, the
 * running ones are waited for, then the first error is thrown: nothing keeps working after a return.
 */
export async function forEachLimit<T>(
  items: readonly T[],
  width: number,
  fn: (item: T, index: number) => Promise<void>,
): Promise<void> {
  let next = 0
  let failed = false
  let first: unknown
  await Promise.all(
    Array.from({ length: Math.min(width, items.length) }, async () => {
      while (!failed && next < items.length) {
        const i = next++
        try {
          await fn(items[i]!, i)
        } catch (err) {
          if (!failed) first = err
          failed = true
        }
      }
    }),
  )
  if (failed) throw first
}
