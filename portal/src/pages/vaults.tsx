export function VaultsPage() {
  return (
    <main id="main" tabIndex={-1}>
      <h1>Vaults</h1>
    </main>
  )
}
export function VaultPage(_p: { name: string }) {
  return (
    <main id="main" tabIndex={-1}>
      <h1>Vault</h1>
    </main>
  )
}
