"""The SIP subset: parsing what trunks send, building what the caller sends, digest values."""

from __future__ import annotations

import pytest

from enumer.verification import sip

# A response as a trunk may send it: compact header names, two Vias in one line and a third
# on its own, a folded header, a quoted display name with a comma, and an SDP body.
COMPACT_RESPONSE = (
    b"SIP/2.0 183 Session Progress\r\n"
    b"v: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKaaa;rport=5060, "
    b"SIP/2.0/UDP 10.0.0.2;branch=z9hG4bKbbb\r\n"
    b"Via: SIP/2.0/UDP 10.0.0.3;branch=z9hG4bKccc\r\n"
    b'f: "Verifier, Inc." <sip:+49301230427@10.0.0.1>;tag=abc\r\n'
    b"t: <sip:+15551230000@trunk.example;user=phone>;tag=xyz\r\n"
    b"i: 1234@10.0.0.1\r\n"
    b"CSeq: 7 INVITE\r\n"
    b"m: <sip:gw@192.0.2.7:5060>\r\n"
    b"Warning: 399 trunk.example\r\n"
    b'  "early media follows"\r\n'
    b"c: application/sdp\r\n"
    b"l: 10\r\n"
    b"\r\n"
    b"v=0\r\ns=-\r\nTRAILING"
)


def test_compact_headers_lists_and_folding() -> None:
    message = sip.parse_message(COMPACT_RESPONSE)
    assert isinstance(message, sip.Response)
    assert (message.status, message.reason) == (183, "Session Progress")
    assert message.status_line == "183 Session Progress"
    vias = message.headers.get_all("Via")
    assert [sip.split_params(v)[1]["branch"] for v in vias] == [
        "z9hG4bKaaa",
        "z9hG4bKbbb",
        "z9hG4bKccc",
    ]
    assert message.headers.get("VIA") == vias[0]
    assert message.headers.get("call-id") == "1234@10.0.0.1"
    assert message.headers.get("Content-Type") == "application/sdp"
    assert message.headers.get("Warning") == '399 trunk.example "early media follows"'
    # Content-Length bounds the body; the rest of the datagram is not body.
    assert message.body == b"v=0\r\ns=-\r\n"
    # From keeps its comma: it is not a list header.
    sender = sip.parse_name_addr(message.headers.get("From") or "")
    assert (sender.display, sender.uri, sender.tag) == (
        "Verifier, Inc.",
        "sip:+49301230427@10.0.0.1",
        "abc",
    )
    assert sip.tag_of(message.headers.get("To") or "") == "xyz"
    assert sip.cseq(message) == (7, "INVITE")


def test_request_round_trip_and_content_length() -> None:
    headers = sip.Headers(
        [
            ("Via", "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1;rport"),
            ("From", "<sip:+4930123@127.0.0.1>;tag=1"),
            ("To", "<sip:+15551230000@trunk.example;user=phone>"),
            ("call-id", "c1@127.0.0.1"),
            ("CSeq", "1 INVITE"),
            ("Content-Length", "999"),  # replaced by the real length when written
        ]
    )
    request = sip.Request(
        "INVITE", "sip:+15551230000@trunk.example;user=phone", headers, b"v=0\r\n"
    )
    data = request.to_bytes()
    assert data.startswith(b"INVITE sip:+15551230000@trunk.example;user=phone SIP/2.0\r\n")
    assert b"Call-ID: c1@127.0.0.1\r\n" in data
    assert data.count(b"Content-Length") == 1
    assert b"Content-Length: 5\r\n\r\nv=0\r\n" in data
    parsed = sip.parse_message(data)
    assert isinstance(parsed, sip.Request)
    assert (parsed.method, parsed.uri, parsed.body) == (request.method, request.uri, request.body)
    assert parsed.headers.get_all("Via") == headers.get_all("Via")
    assert sip.parse_message(parsed.to_bytes()) == parsed


def test_bare_lf_and_missing_content_length_are_accepted() -> None:
    message = sip.parse_message(b"\r\nSIP/2.0 100 Trying\nCall-ID: x\nCSeq: 1 INVITE\n\n")
    assert isinstance(message, sip.Response)
    assert message.status == 100
    assert message.headers.get("Call-ID") == "x"
    assert message.body == b""


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", "empty message"),
        (b"\r\n\r\n", "empty message"),
        (b"HTTP/1.1 200 OK\r\n\r\n", "not a SIP/2.0 request or response line"),
        (b"SIP/2.0 99 Too Low\r\n\r\n", "not a SIP/2.0 request or response line"),
        (b"SIP/2.0 700 Too High\r\n\r\n", "not a SIP/2.0 request or response line"),
        (b"INVITE sip:a@b SIP/3.0\r\n\r\n", "not a SIP/2.0 request or response line"),
        (b"SIP/2.0 200 OK\r\nno colon here\r\n\r\n", "header line without a name and colon"),
        (b"SIP/2.0 200 OK\r\n: empty name\r\n\r\n", "header line without a name and colon"),
        (b"SIP/2.0 200 OK\r\nBad Name: x\r\n\r\n", "bad header name"),
        (b"SIP/2.0 200 OK\r\nl: ten\r\n\r\n", "Content-Length is not a number"),
        (b"SIP/2.0 200 OK\r\nl: 10\r\n\r\nshort", "Content-Length 10 but only 5 body bytes"),
        (b"SIP/2.0 200 \xff\xfe\r\n\r\n", "not UTF-8"),
    ],
)
def test_malformed_messages_raise_a_clear_error(data: bytes, error: str) -> None:
    with pytest.raises(sip.SipError, match=error):
        sip.parse_message(data)


def test_header_values_cannot_inject_lines() -> None:
    with pytest.raises(sip.SipError, match="line break"):
        sip.Headers([("Subject", "hi\r\nVia: evil")])


def test_cseq_must_have_a_number_and_a_method() -> None:
    message = sip.parse_message(b"SIP/2.0 200 OK\r\nCSeq: INVITE\r\n\r\n")
    with pytest.raises(sip.SipError, match="bad CSeq"):
        sip.cseq(message)


def test_headers_set_remove_and_canonical_names() -> None:
    headers = sip.Headers([("v", "a"), ("f", "b"), ("x-custom-thing", "c")])
    assert [name for name, _ in headers] == ["Via", "From", "X-Custom-Thing"]
    headers.set("From", "d")
    assert list(headers) == [("Via", "a"), ("From", "d"), ("X-Custom-Thing", "c")]
    headers.remove("x-CUSTOM-thing")
    assert "X-Custom-Thing" not in headers
    assert len(headers) == 2
    # Authentication challenges contain commas: never split into several values.
    headers.add("WWW-Authenticate", 'Digest realm="r", nonce="n"')
    assert headers.get_all("www-authenticate") == ['Digest realm="r", nonce="n"']


def test_split_list_respects_quotes_and_angle_brackets() -> None:
    value = '"A, B" <sip:a@h;x=1,2>;q=0.5, <sip:c@h>'
    assert sip.split_list(value) == ['"A, B" <sip:a@h;x=1,2>;q=0.5', "<sip:c@h>"]


def test_build_response_copies_the_transaction_headers() -> None:
    request = sip.parse_message(
        b"INVITE sip:+15551230000@127.0.0.1;user=phone SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKx;rport\r\n"
        b"Record-Route: <sip:proxy.example;lr>\r\n"
        b"From: <sip:+4930123@127.0.0.1>;tag=ft\r\n"
        b"To: <sip:+15551230000@127.0.0.1;user=phone>\r\n"
        b"Call-ID: abc\r\n"
        b"CSeq: 3 INVITE\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    assert isinstance(request, sip.Request)
    ringing = sip.build_response(request, 180, "Ringing", to_tag="tt")
    again = sip.parse_message(ringing.to_bytes())
    assert isinstance(again, sip.Response)
    assert again.status_line == "180 Ringing"
    for name in ("Via", "From", "Call-ID", "CSeq", "Record-Route"):
        assert again.headers.get(name) == request.headers.get(name)
    assert sip.tag_of(again.headers.get("To") or "") == "tt"
    busy = sip.build_response(request, 486, "Busy Here", to_tag="tt")
    assert "Record-Route" not in busy.headers  # a failure creates no dialog
    trying = sip.build_response(request, 100, "Trying")
    assert sip.tag_of(trying.headers.get("To") or "") is None


@pytest.mark.parametrize(
    ("text", "user", "host", "port", "params"),
    [
        ("sip:trunk.example.com", None, "trunk.example.com", None, {}),
        ("sip:acct@10.0.0.1:5070", "acct", "10.0.0.1", 5070, {}),
        ("SIP:[2001:db8::1]:5062;transport=UDP;lr", None, "2001:db8::1", 5062,
         {"transport": "UDP", "lr": ""}),
        ("sip:+15551230000;npdi@gw.example;user=phone", "+15551230000;npdi", "gw.example", None,
         {"user": "phone"}),
    ],
)  # fmt: skip
def test_parse_uri(
    text: str, user: str | None, host: str, port: int | None, params: dict[str, str]
) -> None:
    uri = sip.parse_uri(text)
    assert (uri.user, uri.host, uri.port, uri.params) == (user, host, port, params)
    assert sip.parse_uri(str(uri)) == uri


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("tel:+15551230000", "not a sip: URI"),
        ("sip:", "is not a host name"),
        ("sip:host:0", "port '0' is not a number from 1 to 65535"),
        ("sip:host:70000", "from 1 to 65535"),
        ("sip:host:x", "port 'x'"),
        ("sip:bad_host", "'bad_host' is not a host name"),
        ("sip:[2001:db8::1", "unclosed '\\['"),
        ("sip:[nothex]:5060", "not an IPv6 address"),
        ("sip:@host", "user part"),
    ],
)
def test_parse_uri_errors(text: str, error: str) -> None:
    with pytest.raises(sip.SipError, match=error):
        sip.parse_uri(text)


def test_uri_user_is_what_a_phone_shows() -> None:
    assert sip.uri_user('"V" <sip:+49301230427@10.0.0.1>;tag=1') == "+49301230427"
    assert sip.uri_user("sip:+4930@h;tag=1") == "+4930"
    assert sip.uri_user("<tel:+4930>") is None
    assert sip.uri_user("garbage <") is None


def test_password_in_a_uri_is_kept_out_of_its_repr() -> None:
    uri = sip.parse_uri("sip:acct:hunter2@trunk.example")
    assert uri.user == "acct"
    assert uri.password == "hunter2"
    assert "hunter2" not in repr(uri)


def test_new_identifiers() -> None:
    branches = {sip.new_branch() for _ in range(100)}
    assert len(branches) == 100
    assert all(b.startswith("z9hG4bK") for b in branches)
    assert sip.new_call_id("::1").endswith("@[::1]")


def test_minimal_sdp() -> None:
    offer = sip.minimal_sdp("192.0.2.1", 42).decode()
    assert offer.startswith("v=0\r\no=- 42 42 IN IP4 192.0.2.1\r\n")
    assert "m=audio 9 RTP/AVP 0\r\n" in offer
    assert "c=IN IP6 2001:db8::1" in sip.minimal_sdp("2001:db8::1", 1).decode()


# -- digest: the RFCs' own examples -----------------------------------------------------------


def test_digest_rfc2617_example() -> None:
    """RFC 2617 section 3.5: Mufasa's request for /dir/index.html."""
    assert (
        sip.digest_response(
            algorithm="MD5",
            username="Mufasa",
            realm="testrealm@host.com",
            password="Circle Of Life",
            method="GET",
            uri="/dir/index.html",
            nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
            qop="auth",
            nc="00000001",
            cnonce="0a4f113b",
        )
        == "6629fae49393a05397450978507c4ef1"
    )


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_digest_rfc7616_examples(algorithm: str, expected: str) -> None:
    """RFC 7616 section 3.9.1."""
    assert (
        sip.digest_response(
            algorithm=algorithm,
            username="Mufasa",
            realm="http-auth@example.org",
            password="Circle of Life",
            method="GET",
            uri="/dir/index.html",
            nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
            qop="auth",
            nc="00000001",
            cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
        )
        == expected
    )


def test_digest_without_qop_and_unsupported_algorithm() -> None:
    # RFC 2069 form: MD5(HA1:nonce:HA2), computed here by hand.
    import hashlib

    def md5(text: str) -> str:
        return hashlib.md5(text.encode()).hexdigest()

    ha1, ha2 = md5("u:r:p"), md5("INVITE:sip:x@y")
    assert sip.digest_response(
        algorithm="MD5", username="u", realm="r", password="p", method="INVITE",
        uri="sip:x@y", nonce="n",
    ) == md5(f"{ha1}:n:{ha2}")  # fmt: skip
    with pytest.raises(sip.SipError, match="not supported"):
        sip.digest_response(
            algorithm="SHA-512-256", username="u", realm="r", password="p", method="INVITE",
            uri="sip:x@y", nonce="n",
        )  # fmt: skip


def test_challenge_and_authorization_round_trip() -> None:
    challenge = sip.parse_challenge(
        'Digest realm="sip.example", nonce="abc,def", qop="auth,auth-int", opaque="o1",'
        " algorithm=MD5, stale=TRUE"
    )
    assert challenge == sip.Challenge("sip.example", "abc,def", "MD5", ("auth", "auth-int"),
                                      "o1", True)  # fmt: skip
    value = sip.authorization(
        challenge, method="INVITE", uri="sip:+1555@gw", username="acct", password="pw",
        cnonce="cn",
    )  # fmt: skip
    assert value.startswith("Digest ")
    params = sip.parse_auth_params(value.removeprefix("Digest "))
    assert params["nonce"] == "abc,def"
    assert (params["qop"], params["nc"], params["cnonce"], params["opaque"]) == (
        "auth", "00000001", "cn", "o1",
    )  # fmt: skip
    assert params["response"] == sip.digest_response(
        algorithm="MD5", username="acct", realm="sip.example", password="pw", method="INVITE",
        uri="sip:+1555@gw", nonce="abc,def", qop="auth", nc="00000001", cnonce="cn",
    )  # fmt: skip
    assert "pw" not in value.replace('"', " ").split()


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ('Basic realm="x"', "is not Digest"),
        ('Digest realm="x"', "without realm or nonce"),
        ("Digest realm", "bad authentication parameter"),
    ],
)
def test_bad_challenges(value: str, error: str) -> None:
    with pytest.raises(sip.SipError, match=error):
        sip.parse_challenge(value)
