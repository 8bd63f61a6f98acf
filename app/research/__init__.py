"""The de-identified research export (domain.md, De-identification for research)."""
