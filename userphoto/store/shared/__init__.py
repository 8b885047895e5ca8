"""The store's statements written once over `sql.Dialect`, one module a job; each backend
joins these with its own plumbing (connections, change feed, leases, migrations, dump)."""
