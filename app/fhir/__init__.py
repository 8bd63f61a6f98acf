"""A read-only FHIR R4 view of a course (api.md, "FHIR R4 view"): ids and codes only, never free text."""
