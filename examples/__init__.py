"""Small web apps that queue email with outbox; each runs on its own (see README.md)."""
