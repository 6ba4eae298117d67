"""The caller's side of ENUMER: what a PBX does with the answers the gateway serves.

* :mod:`enumer.calling.route` asks NAPTR over real DNS, suffix after suffix
  (the ENUMER gateway, then ``e164.arpa``), and picks the URI to call, as a
  PBX dialplan does (SPEC 8);
* :mod:`enumer.calling.compat` tells a number owner, before publishing, whether
  FreeSWITCH, Asterisk and Kamailio would use each directive of a record and
  which URI each would produce;
* :mod:`enumer.calling.pbx` writes ready configuration fragments for those
  PBXs and for the resolver (BIND, unbound) that forwards the ``enum`` zone;
* :mod:`enumer.calling.command` adds ``enumer route``, ``enumer record check``
  and ``enumer pbx`` to the command line.
"""
