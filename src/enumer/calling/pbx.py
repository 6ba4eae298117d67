"""Ready configuration fragments: a PBX dialplan that uses ENUMER, and the resolver stanza.

Every PBX fragment does what the article's FreeSWITCH dialplan does: bring the
dialled number to E.164, ask ENUMER (the ``enum`` suffix), then ``e164.arpa``,
then hand the call to the PSTN route the administrator names. The PBXs ask
their system resolver, so the resolver must forward the ``enum`` zone to the
ENUMER gateway: :func:`bind_stanza` and :func:`unbound_stanza` write that part
(the article's "fifth zone").

The number normalisation is one list of :class:`NormalisationRule` rendered
into each PBX's syntax, so that the three agree with each other and with
``enumer route`` (:meth:`enumer.e164.E164.from_text`); the tests extract the rules
from the generated text and compare. The rules are written with bracket
expressions only (``[+]``, ``[0-9]``), never backslashes, because a backslash
means something different in XML attributes, Kamailio strings and Asterisk
dialplan values, and ``\\d`` does not exist in the POSIX regexes of Kamailio
and Asterisk.

Unlike the article's dialplan, the FreeSWITCH fragment does not ``transfer``
the normalised number back through the dialplan: a normalised ``+49 30 ...``
would be 10 digits long and the "10 digits: prepend 1" rule would then turn
it into ``1 49 30 ...``. It stores the result in a channel variable instead.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Final
from xml.sax.saxutils import quoteattr

import phonenumbers

__all__ = [
    "DialplanConfig",
    "NormalisationRule",
    "PbxError",
    "asterisk_fragment",
    "bind_stanza",
    "freeswitch_fragment",
    "kamailio_config",
    "normalisation_rules",
    "normalise",
    "unbound_stanza",
]

#: E.164 digits after the country code's first digit: 7 to 15 digits in all.
_INTERNATIONAL: Final = "[1-9][0-9]{6,14}"


class PbxError(ValueError):
    """A parameter that cannot go into a configuration; one line."""


@dataclass(frozen=True)
class NormalisationRule:
    """``pattern`` (anchored, one group) matches a dialled number; the E.164 digits
    are ``prefix`` followed by the group, which is the number without its first
    ``strip`` characters."""

    name: str
    pattern: str
    strip: int
    prefix: str

    def apply(self, dialled: str) -> str | None:
        """The E.164 digits (no ``+``) for ``dialled``, or None when the rule does not match."""
        m = re.fullmatch(self.pattern, dialled)
        if m is None:
            return None
        assert m.group(1) == dialled[self.strip :], self
        return self.prefix + m.group(1)


def _digits_only(text: str | None) -> str | None:
    return text if text and text.isdigit() else None


def normalisation_rules(region: str, area_code: str | None = None) -> list[NormalisationRule]:
    """The dialplan rules for a PBX in ``region``, first match wins (SPEC 8, the article).

    ``+`` and ``00`` are international everywhere, as is the region's own
    international prefix (``011`` in NANP, ``810`` in Russia). In NANP, 10
    digits get the leading ``1``, ``1`` + 10 digits are already E.164, and with
    ``area_code`` 7 digits get ``1<area code>`` (the article's home code).
    Elsewhere the national trunk prefix (``0``, ``8``) is replaced by the
    country code. Numbers that match no rule are not ENUM-eligible: the
    fragments send them to the PSTN as dialled.
    """
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region.upper())
    if metadata is None:
        raise PbxError(f"unknown region {region!r} (expected e.g. US, DE, RU)")
    country = str(metadata.country_code)
    rules = [NormalisationRule("international, +", f"^[+]({_INTERNATIONAL})$", 1, "")]
    idd = _digits_only(metadata.international_prefix) or _digits_only(
        (metadata.preferred_international_prefix or "").replace("~", "")
    )
    for prefix in dict.fromkeys(p for p in (idd, "00") if p):
        rules.append(
            NormalisationRule(
                f"international, {prefix}", f"^{prefix}({_INTERNATIONAL})$", len(prefix), ""
            )
        )
    if country == "1":
        rules.append(NormalisationRule("NANP, 1 + 10 digits", "^(1[2-9][0-9]{9})$", 0, ""))
        rules.append(NormalisationRule("NANP, 10 digits", "^([2-9][0-9]{9})$", 0, "1"))
        if area_code is not None:
            if len(area_code) != 3 or not area_code.isdigit() or area_code[0] in "01":
                raise PbxError(f"area code {area_code!r} is not a NANP area code (3 digits, 2-9xx)")
            rules.append(
                NormalisationRule("NANP, 7 digits", "^([2-9][0-9]{6})$", 0, f"1{area_code}")
            )
        return rules
    if area_code is not None:
        raise PbxError(
            f"--area-code needs a NANP region such as US; {region.upper()} is +{country}"
        )
    trunk = _digits_only(metadata.national_prefix)
    if trunk is not None:
        rules.append(
            NormalisationRule(
                f"national, trunk prefix {trunk}",
                f"^{trunk}([1-9][0-9]{{3,13}})$",
                len(trunk),
                country,
            )
        )
    return rules


def normalise(dialled: str, rules: list[NormalisationRule]) -> str | None:
    """The first rule's result (E.164 digits), as each generated dialplan computes it."""
    for rule in rules:
        result = rule.apply(dialled)
        if result is not None:
            return result
    return None


@dataclass(frozen=True)
class DialplanConfig:
    """What an administrator chooses; every fragment is a function of it."""

    region: str = "US"
    area_code: str | None = None
    gateway: tuple[str, int] = ("127.0.0.1", 5335)
    suffix: str = "enum"
    fallback_suffix: str | None = "e164.arpa"
    caller_id: str | None = None
    pstn: str | None = None
    listen: str = "udp:127.0.0.1:5060"

    def __post_init__(self) -> None:
        for what, zone in (("suffix", self.suffix), ("fallback suffix", self.fallback_suffix)):
            if zone is not None and not re.fullmatch(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*", zone):
                raise PbxError(f"{what} {zone!r} is not a DNS zone name like enum or e164.arpa")
        if self.caller_id is not None and not re.fullmatch(r"[+]?[0-9]{3,15}", self.caller_id):
            raise PbxError(
                f"caller ID {self.caller_id!r}: expected an E.164 number like +15553550000"
            )
        if self.pstn is not None and not re.fullmatch(r"[A-Za-z0-9_.:\[\]-]+", self.pstn):
            raise PbxError(f"PSTN route {self.pstn!r}: letters, digits and . _ : - only")

    @property
    def rules(self) -> list[NormalisationRule]:
        return normalisation_rules(self.region, self.area_code)

    @property
    def suffixes(self) -> list[str]:
        return [self.suffix] + ([self.fallback_suffix] if self.fallback_suffix else [])

    @property
    def gateway_text(self) -> str:
        host, port = self.gateway
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    @property
    def caller_id_e164(self) -> str | None:
        if self.caller_id is None:
            return None
        return self.caller_id if self.caller_id.startswith("+") else "+" + self.caller_id


def _resolver_note(config: DialplanConfig, comment: str) -> list[str]:
    """The lines every PBX fragment starts with: where the answers come from."""
    return [
        f"{comment} The PBX asks its system resolver (/etc/resolv.conf). That resolver must",
        f'{comment} forward the zone "{config.suffix}" to the ENUMER gateway at '
        f"{config.gateway_text}:",
        f"{comment} see 'enumer pbx bind' or 'enumer pbx unbound'.",
    ]


# -- FreeSWITCH -----------------------------------------------------------------------


def freeswitch_fragment(config: DialplanConfig) -> str:
    """An XML dialplan ``<include>`` with two extensions: normalise, then look up.

    Goes into the context phones dial from (``conf/dialplan/default/``), after
    internal extensions and before the PSTN ones. The lookup follows the
    article: ``enum`` app with the suffix, ``bridge ${enum_auto_route}`` with
    ``continue_on_fail``, then the next suffix, then the PSTN gateway.
    """
    pstn = config.pstn or "pstn"
    lines = [
        '<?xml version="1.0" encoding="utf-8"?>',
        "<!--",
        "  ENUMER for FreeSWITCH (generated by enumer pbx freeswitch).",
        "  Put this file into the dialplan context your phones dial from, after the internal",
        "  extensions and before the PSTN extensions. mod_enum must be loaded.",
        *("  " + line.removeprefix("#").strip() for line in _resolver_note(config, "#")),
        "  mod_enum also reads autoload_configs/enum.conf.xml: its stock route for",
        '  E2U+SIP is enough; add <route service="E2U+voice:sip" regex="sip:(.*)"',
        '  replace="sofia/${use_profile}/$1"/> to also call E2U+voice:sip records.',
        f'  PSTN fallback: the sofia gateway "{pstn}".',
        "-->",
        "<include>",
        "  <!-- Normalise the dialled number to E.164 digits, without the plus. -->",
        '  <extension name="enumer_normalise" continue="true">',
    ]
    for rule in config.rules:
        lines += [
            f"    <!-- {rule.name} -->",
            f'    <condition field="destination_number" expression={quoteattr(rule.pattern)}'
            ' break="on-true">',
            f'      <action application="set" data="enumer_e164={rule.prefix}$1" inline="true"/>',
            "    </condition>",
        ]
    lines += [
        "  </extension>",
        "  <!-- Look the number up in ENUMER, then in the next suffix, then call the PSTN. -->",
        '  <extension name="enumer_lookup">',
        f'    <condition field="${{enumer_e164}}" expression="^({_INTERNATIONAL})$">',
        '      <action application="ring_ready"/>',
        '      <action application="set" data="hangup_after_bridge=true"/>',
        '      <action application="set" data="continue_on_fail=true"/>',
    ]
    caller_id = config.caller_id_e164
    if caller_id is not None:
        lines += [
            f'      <action application="set" data="effective_caller_id_name={caller_id}"/>',
            f'      <action application="set" data="effective_caller_id_number={caller_id}"/>',
        ]
    for suffix in config.suffixes:
        lines += [
            f'      <action application="enum" data="+$1 {suffix}"/>',
            '      <action application="bridge" data="${enum_auto_route}"/>',
        ]
    lines += [
        f'      <action application="bridge" data="sofia/gateway/{pstn}/+$1"/>',
        "    </condition>",
        "  </extension>",
        "</include>",
        "",
    ]
    return "\n".join(lines)


# -- Asterisk ---------------------------------------------------------------------------


def asterisk_fragment(config: DialplanConfig) -> str:
    """An ``extensions.conf`` context ``[enumer-outbound]`` (include it where phones dial).

    ``ENUMLOOKUP(+N,sip,u,1,suffix)``: method ``sip`` explicitly (Asterisk 21+
    defaults to ``pjsip``, which no record offers) and option ``u`` for the
    full URI, which ``Dial(PJSIP/enumer/<uri>)`` sends through the endpoint
    ``enumer`` (a pjsip.conf endpoint without AOR, shown in the comments).
    """
    pstn = config.pstn or "pstn"
    lines = [
        "; ENUMER for Asterisk (generated by enumer pbx asterisk).",
        "; Include this context where your phones dial: include => enumer-outbound",
        *_resolver_note(config, ";"),
        "; Calls found in ENUM leave through the PJSIP endpoint 'enumer'; in pjsip.conf:",
        ";   [enumer]",
        ";   type=endpoint",
        ";   context=from-enumer",
        ";   disallow=all",
        ";   allow=ulaw,alaw",
        f"; Other calls go to the PSTN through the PJSIP endpoint '{pstn}'.",
        "",
        "[enumer-outbound]",
        "exten => _[+0-9].,1,NoOp(ENUMER: ${EXTEN})",
        " same => n,Set(ENUMER_NUM=${EXTEN})",
        " same => n,Set(ENUMER_E164=)",
    ]
    for rule in config.rules:
        lines.append(f" ; {rule.name}")
        lines.append(
            f' same => n,ExecIf($["${{ENUMER_E164}}" = "" & ${{REGEX("{rule.pattern}" '
            f"${{ENUMER_NUM}})}}]?Set(ENUMER_E164={rule.prefix}${{ENUMER_NUM:{rule.strip}}}))"
        )
    lines.append(' same => n,GotoIf($["${ENUMER_E164}" = ""]?pstn)')
    caller_id = config.caller_id_e164
    if caller_id is not None:
        lines.append(f" same => n,Set(CALLERID(all)={caller_id} <{caller_id}>)")
    for index, suffix in enumerate(config.suffixes):
        label = f"(lookup{index})" if index else ""
        following = f"lookup{index + 1}" if index + 1 < len(config.suffixes) else "pstn"
        lines += [
            f" same => n{label},Set(ENUMER_URI="
            f"${{ENUMLOOKUP(+${{ENUMER_E164}},sip,u,1,{suffix})}})",
            f' same => n,GotoIf($["${{ENUMER_URI}}" = ""]?{following})',
            " same => n,Dial(PJSIP/enumer/${ENUMER_URI},60)",
            f' same => n,GotoIf($["${{DIALSTATUS}}" = "ANSWER"]?done:{following})',
        ]
    lines += [
        f' same => n(pstn),Dial(PJSIP/${{IF($["${{ENUMER_E164}}" = ""]?${{ENUMER_NUM}}'
        f":+${{ENUMER_E164}})}}@{pstn},60)",
        " same => n(done),Hangup()",
        "",
    ]
    return "\n".join(lines)


# -- Kamailio ---------------------------------------------------------------------------


def _kamailio_pstn(config: DialplanConfig) -> str:
    return config.pstn or "pstn.example.net"


def kamailio_config(config: DialplanConfig) -> str:
    """A complete ``kamailio.cfg`` (Kamailio 5.x): a SIP proxy that routes by ENUMER.

    It passes ``kamailio -c``, and the end-to-end test routes real calls
    through it. ``enum_query(suffix)`` takes ``E2U+sip`` records (add the
    service argument ``"+sip+voice:sip"`` for ``E2U+voice:sip``); when the
    ENUM destination fails (404, 408, 480, 5xx) the call goes to the PSTN.
    """
    if not re.fullmatch(r"(udp|tcp):[0-9A-Za-z.\[\]:]+:[0-9]+", config.listen):
        raise PbxError(f"listen {config.listen!r}: expected e.g. udp:127.0.0.1:5060")
    pstn = _kamailio_pstn(config)
    normalise_lines: list[str] = []
    for index, rule in enumerate(config.rules):
        keyword = "if" if index == 0 else "} else if"
        normalise_lines += [
            f"\t# {rule.name}",
            f'\t{keyword} ($rU =~ "{rule.pattern}") {{',
            f'\t\t$var(e164) = "{rule.prefix}" + $(rU{{s.substr,{rule.strip},0}});',
        ]
    normalise_lines.append("\t}")
    lookups: list[str] = []
    for suffix in config.suffixes:
        lookups += [
            f'\tif (enum_query("{suffix}.")) {{',
            f'\t\txlog("L_INFO", "ENUMER: +$avp(enumer_e164) via {suffix} -> $ru\\n");',
            '\t\tt_on_failure("ENUMER_FAILED");',
            "\t\tif (!t_relay()) {",
            "\t\t\tsl_reply_error();",
            "\t\t}",
            "\t\texit;",
            "\t}",
        ]
    return "\n".join(
        [
            "#!KAMAILIO",
            "#",
            "# ENUMER for Kamailio 5.x (generated by enumer pbx kamailio): a SIP proxy that",
            "# normalises the dialled number, asks ENUMER, then the next suffix, then sends",
            "# the call to the PSTN gateway.",
            *_resolver_note(config, "#"),
            f"# PSTN gateway: sip:<number>@{pstn}",
            "",
            "debug=2",
            "log_stderror=no",
            "children=2",
            f"listen={config.listen}",
            "",
            'loadmodule "tm.so"',
            'loadmodule "sl.so"',
            'loadmodule "rr.so"',
            'loadmodule "pv.so"',
            'loadmodule "maxfwd.so"',
            'loadmodule "textops.so"',
            'loadmodule "siputils.so"',
            'loadmodule "xlog.so"',
            'loadmodule "enum.so"',
            "",
            "request_route {",
            '\tif (!mf_process_maxfwd_header("10")) {',
            '\t\tsl_send_reply("483", "Too Many Hops");',
            "\t\texit;",
            "\t}",
            "\tif (has_totag()) {",
            '\t\tif (loose_route() || is_method("ACK")) {',
            "\t\t\tt_relay();",
            "\t\t\texit;",
            "\t\t}",
            '\t\tsl_send_reply("404", "Not here");',
            "\t\texit;",
            "\t}",
            '\tif (is_method("CANCEL")) {',
            "\t\tif (t_check_trans()) {",
            "\t\t\tt_relay();",
            "\t\t}",
            "\t\texit;",
            "\t}",
            '\tif (is_method("ACK")) {',
            "\t\texit;",
            "\t}",
            '\tif (!is_method("INVITE")) {',
            '\t\tsl_send_reply("501", "Not Implemented");',
            "\t\texit;",
            "\t}",
            "\trecord_route();",
            "\troute(ENUMER);",
            "}",
            "",
            "# The dialled number (R-URI user) as E.164 digits without '+', or empty.",
            "route[NORMALISE] {",
            '\t$var(e164) = "";',
            *normalise_lines,
            "}",
            "",
            "route[ENUMER] {",
            "\troute(NORMALISE);",
            '\tif ($var(e164) == "") {',
            "\t\troute(PSTN);",
            "\t}",
            "\t$avp(enumer_e164) = $var(e164);",
            '\t$rU = "+" + $var(e164);',
            *lookups,
            "\troute(PSTN);",
            "}",
            "",
            "route[PSTN] {",
            f'\t$ru = "sip:" + $rU + "@{pstn}";',
            "\tif (!t_relay()) {",
            "\t\tsl_reply_error();",
            "\t}",
            "\texit;",
            "}",
            "",
            "failure_route[ENUMER_FAILED] {",
            "\tif (t_is_canceled()) {",
            "\t\texit;",
            "\t}",
            '\tif (t_check_status("404|408|480|5[0-9][0-9]")) {',
            f'\t\t$ru = "sip:+" + $avp(enumer_e164) + "@{pstn}";',
            "\t\tt_relay();",
            "\t}",
            "}",
            "",
        ]
    )


# -- resolvers --------------------------------------------------------------------------


def _is_loopback(host: str) -> bool:
    return ipaddress.ip_address(host).is_loopback


def bind_stanza(config: DialplanConfig, trust_anchors: tuple[str, ...] = ()) -> str:
    """The ``named.conf`` zone that forwards the ENUMER zone to the gateway.

    ``forward only``: the answer must come from the gateway, never from the
    root, which does not delegate ``enum``. For the same reason a validating
    BIND must not validate the zone (``validate-except``) -- unless the gateway
    signs it: then ``trust_anchors`` (the ``trust-anchors`` block of
    ``enumer dnssec ds``) makes BIND validate every answer.
    """
    host, port = config.gateway
    zone = [
        f'zone "{config.suffix}" {{',
        "    type forward;",
        "    forward only;",
        f"    forwarders {{ {host} port {port}; }};",
        "};",
        "",
    ]
    if trust_anchors:
        head = [
            f'// ENUMER: forward the signed zone "{config.suffix}" to the ENUMER gateway at',
            f"// {config.gateway_text} and validate its answers with the zone's trust anchor",
            "// (generated by enumer pbx bind --dnssec). Paste it into named.conf and",
            "// reload: rndc reload. Keep dnssec-validation on (Debian's default: auto).",
            *trust_anchors,
            "",
        ]
    else:
        head = [
            f'// ENUMER: forward the zone "{config.suffix}" to the ENUMER gateway at',
            f"// {config.gateway_text} (generated by enumer pbx bind). Paste it into named.conf",
            "// (Debian: /etc/bind/named.conf.local) and reload: rndc reload.",
            "//",
            f'// The root zone does not delegate "{config.suffix}": if DNSSEC validation is on,',
            "// also put this line into the options { } block (Debian: named.conf.options):",
            "//",
            f'//     validate-except {{ "{config.suffix}"; }};',
            "//",
        ]
    return "\n".join([*head, *zone])


def unbound_stanza(config: DialplanConfig, trust_anchors: tuple[str, ...] = ()) -> str:
    """The ``unbound.conf`` part: a forward zone, localhost allowed; not validated, or,
    with ``trust_anchors`` (``trust-anchor:`` lines of ``enumer dnssec ds``), validated."""
    host, port = config.gateway
    server = ["server:"]
    if trust_anchors:
        server += list(trust_anchors)
        head = [
            f'# ENUMER: forward the signed zone "{config.suffix}" to the ENUMER gateway at',
            f"# {config.gateway_text}, validated with the zone's trust anchor (generated by",
            "# enumer pbx unbound --dnssec). Put it into /etc/unbound/unbound.conf.d/enumer.conf",
            "# and restart unbound. do-not-query-localhost: unbound does not forward to",
            "# 127.0.0.1 otherwise.",
        ]
    else:
        server.append(f'    domain-insecure: "{config.suffix}"')
        head = [
            f'# ENUMER: forward the zone "{config.suffix}" to the ENUMER gateway at',
            f"# {config.gateway_text} (generated by enumer pbx unbound). Put it into",
            "# /etc/unbound/unbound.conf.d/enumer.conf and restart unbound.",
            "# domain-insecure: the root zone does not delegate the zone, so it cannot be",
            "# validated. do-not-query-localhost: unbound does not forward to 127.0.0.1",
            "# otherwise.",
        ]
    if _is_loopback(host):
        server.append("    do-not-query-localhost: no")
    return "\n".join(
        [
            *head,
            *server,
            "",
            "forward-zone:",
            f'    name: "{config.suffix}"',
            f"    forward-addr: {host}@{port}",
            "",
        ]
    )
