"""Rule governance on the audit log: replay recorded decisions with candidate rules, shadow evaluation."""
