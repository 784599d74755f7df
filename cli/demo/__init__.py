"""``outbox demo``: the whole queue in one process against the sandbox, checked.

:mod:`.command` is the command (it loads the rest only when it runs, so the command line
needs nothing the demo needs) and :mod:`.options` what it can be asked for; :mod:`.run`
runs it, :mod:`.stack` starts the sandbox, the broker and a worker in this process,
:mod:`.mix` plans the sends, :mod:`.watch` follows them with progress bars,
:mod:`.report` works out the summary and :mod:`.view` shows it.
"""
