"""Configuration values more than one command reads: the error type and the address forms.

The gateway (``serve``), the caller's side (``route --server``) and the metrics
endpoint all take ``ADDR[:PORT]`` the same way, and report a bad value the same
way: one line naming the key and the value.  This module sits below every
command package so that none of them has to import another to share it.
"""

from __future__ import annotations

import ipaddress
import re


class ConfigError(ValueError):
    """A bad configuration value: ``<key>: <problem> (<value>)``, one line."""


def parse_bind(text: str, port: int) -> tuple[str, int]:
    """``ADDR``, ``ADDR:PORT`` or ``[V6]:PORT``; emcdns's leading-dot form ``.127.0.0.1`` too."""
    text = text.strip().lstrip(".")
    host, bind_port = text, port
    m = re.fullmatch(r"\[([^\]]+)\](?::([0-9]+))?", text)
    if m:
        host, bind_port = m.group(1), int(m.group(2) or port)
    elif text.count(":") == 1:
        host, _, p = text.partition(":")
        bind_port = int(p) if p.isdigit() else -1
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(f"bind address {text!r} is not an IPv4 or IPv6 address") from None
    if not 0 <= bind_port <= 65535:
        raise ConfigError(f"bind address {text!r}: bad port")
    return host, bind_port


def parse_port(text: str, key: str) -> int:
    """A TCP/UDP port ``0..65535`` given as the value of ``key``."""
    if not text.strip().isdigit() or not 0 <= int(text) <= 65535:
        raise ConfigError(f"{key}: port must be 0-65535, got {text!r}")
    return int(text)
