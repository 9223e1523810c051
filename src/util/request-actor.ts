import { AsyncLocalStorage } from 'node:async_hooks'

const actors = new AsyncLocalStorage<string>()

/**
 * Runs `fn` on behalf of `actor` (a user name, `token:NAME` …): work it starts, however deep and however
 * late, can ask `requestActor()` who asked for it (jobs record it as `startedBy`) without every service
 * method taking the caller as a parameter.
 */
export function runAsActor<T>(actor: string, fn: () => T): T {
  return actors.run(actor, fn)
}

/** Who the current work runs for, or undefined outside of a request (the scheduler, start-up). */
export function requestActor(): string | undefined {
  return actors.getStore()
}
