"""Group IPT: groups, their facilitators, members (each with a course of their own) and group sessions."""
