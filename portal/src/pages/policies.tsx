export function PoliciesPage(_props: Record<string, unknown>) {
  return (
    <main id="main" tabIndex={-1}>
      <h1>PoliciesPage</h1>
    </main>
  )
}
