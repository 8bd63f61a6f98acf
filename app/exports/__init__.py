"""FHIR Bulk Data export jobs and the NDJSON files they write, kept in the database."""
