export function FilesPage(_props: Record<string, unknown>) {
  return (
    <main id="main" tabIndex={-1}>
      <h1>FilesPage</h1>
    </main>
  )
}
