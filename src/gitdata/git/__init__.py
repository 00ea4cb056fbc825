"""Everything that speaks to git: pkt-line, the filter protocol, repo access."""
