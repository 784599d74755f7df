"""What the app's side (producers) and Celery's side (the worker) both stand on.

States, kinds, queues, windows, the error tree, settings, the Redis connection, the
payload's wire format, the typed records, the store (with its Lua scripts) and the
SMTP2GO API's models and client. Nothing here imports ``outbox.worker``, the producer
modules, the command line or the sandbox (``tests/unit/test_layering.py``).
"""
