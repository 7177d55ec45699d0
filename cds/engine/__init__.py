"""Rule language and engine: schema, loader, linter, compiler, durable_rules adapter, reference evaluator,
dose composer. The only package that imports durable_rules; it sees facts, never FHIR."""
