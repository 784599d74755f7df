"""SMTP2GO v3: the HTTP client (:mod:`.client`), its payload models (:mod:`.models`) and the
reading of answers that are not a success (:mod:`.responses`); the error classes are in
:mod:`outbox.core.errors`.

Nothing is imported here: a producer validating with the models loads no HTTP client.
"""
