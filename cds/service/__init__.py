"""HTTP layer of the CDS Hooks service."""
