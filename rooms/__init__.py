"""The consult domain: consults, participants, grants, lifecycle, lobby, timeline, room registry."""
