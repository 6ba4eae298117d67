"""The verifier's web service: number owners prove ownership by call and get signed.

The pieces, from the inside out:

- :mod:`~enumer.verification.model`: the request states and their transitions,
  the challenge text, codes and the abuse policy. Pure: no clock reads, no I/O.
- :mod:`~enumer.verification.db`: the service's own state in SQLite (requests,
  the append-only audit log, operators, sessions, rate-limit counters).
- :mod:`~enumer.verification.calls`: how a code reaches a phone. ``Caller`` is
  the interface; :class:`~enumer.verification.calls.FlashCaller` rings the
  number through a SIP trunk with the code at the end of the caller number.
- :mod:`~enumer.verification.service`: the owner's path and the operator's
  actions, tying the above to the wallet (which signs; the key never leaves it).
- :mod:`~enumer.verification.web`: the application over HTTP, joining three
  routers: :mod:`~enumer.verification.pages` (the owner's pages),
  :mod:`~enumer.verification.console` (the operator console) and
  :mod:`~enumer.verification.api` (the JSON API), which share
  :mod:`~enumer.verification.site` (rendering, CSRF, credentials);
  :mod:`~enumer.verification.command`: ``enumer verifier serve`` and
  ``enumer verifier admin``.
"""
