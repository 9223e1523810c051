export function SettingsPage(_props: Record<string, unknown>) {
  return (
    <main id="main" tabIndex={-1}>
      <h1>SettingsPage</h1>
    </main>
  )
}
