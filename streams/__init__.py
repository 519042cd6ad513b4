"""The wiring of delaycast: settings, the Faust app and agents, the runtime, the CLI, the stack.

This is the only package that reads settings (``streams.settings``) and hands plain values to
``connectors`` and ``models``. ``python -m streams`` and the ``delaycast`` script are the same CLI.
"""
