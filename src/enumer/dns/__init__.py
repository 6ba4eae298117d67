"""The ENUMER DNS gateway: an authoritative server for ENUM zones.

* :mod:`enumer.dns.wire` -- the per-query hot path: raw query bytes in,
  pre-built response bytes out (``respond``), and the ``AnswerSource`` /
  ``GatewayView`` types the rest of the gateway codes against;
* :mod:`enumer.dns.server` -- the sockets composed: binds the addresses and
  runs :mod:`enumer.dns.udp` (the UDP loops: the hot path, in C where built),
  :mod:`enumer.dns.tcp` (RFC 7766) and :mod:`enumer.dns.workers` (forked UDP
  worker processes), which share :mod:`enumer.dns.serving`;
* :mod:`enumer.dns.ratelimit` -- per-client rate limiting and RRL;
* :mod:`enumer.dns.metrics` -- counters, gauges, the Prometheus endpoint;
* :mod:`enumer.dns.table` -- the compiled answer table (an ``AnswerSource``);
* :mod:`enumer.dns.config` -- the gateway's settings (emercoin.conf ``emcdns*``/``enum*`` keys);
* :mod:`enumer.dns.mirror` -- the local index of an Emercoin node's names the gateway serves.
"""
