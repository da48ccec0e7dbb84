"""The Webhooks page: static HTML/CSS/JS served at `/`, a client of the registry's own HTTP API only."""
