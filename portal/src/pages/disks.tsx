export function DisksPage(_props: Record<string, unknown>) {
  return (
    <main id="main" tabIndex={-1}>
      <h1>DisksPage</h1>
    </main>
  )
}
