export function JobsPage(_props: Record<string, unknown>) {
  return (
    <main id="main" tabIndex={-1}>
      <h1>JobsPage</h1>
    </main>
  )
}
