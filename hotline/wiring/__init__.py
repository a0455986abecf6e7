"""How the controller is put together: one module per feature, each a ``build_*`` function
that constructs the feature's parts from the config and the parts it needs, and returns them
in a frozen dataclass. ``hotline/controller.py`` calls them in dependency order:

``calls`` (Redis, call records, callbacks, hand-offs, events, AMI) → ``ivr.build_dialplans`` →
``messages`` (tickets, voicemail, ASR) → ``case_desk`` (units, knowledge, cases) → ``acd``
(seats, engine) → ``network`` (transfers, consultations) → ``ivr.build_ivr_context`` → ``agi``
(the FastAGI routes and server).

A new feature gets its own module here (``build_<feature>``) and a few lines in
``Controller.__init__``; its periodic jobs go in ``hotline/controller_tasks.py``, what the
HTTP layer reads of it in ``hotline/controller_api.py``, its routes in ``hotline/api.py``.
"""
