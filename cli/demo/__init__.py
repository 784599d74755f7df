"""``outbox demo``: the whole queue in one process against the sandbox, checked.

:mod:`.command` is the command (it loads the rest only when it runs, so the command line
needs nothing the demo needs); :mod:`.run` runs it, :mod:`.stack` starts the sandbox, the
broker and a worker in this process, :mod:`.mix` plans the sends, :mod:`.view` shows them.
"""
