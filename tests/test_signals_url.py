"""URL signal: one canonical form per address, so that a URL list matches every spelling."""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from lightkeeper.errors import InvalidSignal
from lightkeeper.signals.url import MAX_URL_LENGTH, UrlSignal, normalize_url

URL = UrlSignal()


@pytest.mark.parametrize(
    ("given_url", "canonical"),
    [
        ("HTTP://Example.COM", "http://example.com/"),
        ("http://example.com:80/", "http://example.com/"),
        ("https://example.com:443/", "https://example.com/"),
        ("http://example.com:443/", "http://example.com:443/"),
        ("https://example.com:8443/", "https://example.com:8443/"),
        ("http://example.com:/x", "http://example.com/x"),
        ("http://example.com:0080/x", "http://example.com/x"),
        ("http://example.com/page#section", "http://example.com/page"),
        ("http://@example.com/", "http://example.com/"),
        ("http://:@example.com/", "http://example.com/"),
        ("http://user:@example.com/", "http://user@example.com/"),
        ("http://User:Pa%3as@example.com/", "http://User:Pa%3As@example.com/"),
        ("http://a@b@example.com/", "http://a%40b@example.com/"),
        ("http://example.com/a/./b/../c", "http://example.com/a/c"),
        ("http://example.com/a/b/..", "http://example.com/a/"),
        ("http://example.com/../../x", "http://example.com/x"),
        ("http://example.com/%2e%2E/x/%2E", "http://example.com/x/"),
        ("http://example.com/a//b", "http://example.com/a//b"),
        ("http://example.com/%7euser/%41%62", "http://example.com/~user/Ab"),
        ("http://example.com/a%2fb%3F", "http://example.com/a%2Fb%3F"),
        ("http://example.com/100%", "http://example.com/100%25"),
        ("http://example.com/%zz", "http://example.com/%25zz"),
        ("http://example.com/ü", "http://example.com/%C3%BC"),
        ('http://example.com/{a}|"b"^', "http://example.com/%7Ba%7D%7C%22b%22%5E"),
        ("http://example.com/p?b=2&a=1", "http://example.com/p?b=2&a=1"),
        ("http://example.com/p?q=a+b%2bc%7e/?", "http://example.com/p?q=a+b%2Bc~/?"),
        ("http://example.com/p?", "http://example.com/p"),
        ("http://example.com?x", "http://example.com/?x"),
        ("http://Bücher.example/", "http://xn--bcher-kva.example/"),
        ("http://xn--bcher-kva.example/", "http://xn--bcher-kva.example/"),
        ("http://ｅｘａｍｐｌｅ。com/", "http://example.com/"),
        ("http://ex%61mple.com/", "http://example.com/"),
        ("http://example.com./", "http://example.com/"),
        ("http://under_score.example.com/", "http://under_score.example.com/"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080/"),
        ("http://[2001:DB8:0:0::1]/", "http://[2001:db8::1]/"),
        ("http://[::1]:80/", "http://[::1]/"),
        ("  http://example.com/\n", "http://example.com/"),
    ],
)
def test_canonical_forms(given_url: str, canonical: str) -> None:
    assert URL.normalize(given_url) == canonical


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("", "URL is empty"),
        ("example.com/path", "URL has no scheme"),
        ("ftp://example.com/", "URL scheme 'ftp' is not supported (only http and https)"),
        ("javascript:alert(1)", "URL scheme 'javascript' is not supported"),
        ("file:///etc/passwd", "URL scheme 'file' is not supported"),
        ("http:///path", "URL has no host"),
        ("http:example.com", "URL has no host"),
        ("http://user@/", "URL has no host"),
        ("http://exa mple.com/", "whitespace or a control character (U+0020) at position 11"),
        ("http://example.com/a\tb", "(U+0009) at position 21"),
        ("http://example.com/\x00", "(U+0000)"),
        ("http://example.com/\u200b", "(U+200B)"),  # zero-width space
        ("http://example.com/\u202e", "(U+202E)"),  # right-to-left override
        ("http://example.com:http/", "URL port 'http' is not a number"),
        ("http://example.com:65536/", "URL port 65536 is over 65535"),
        ("http://example..com/", "URL host 'example..com' has an empty label"),
        ("http://.example.com/", "has an empty label"),
        ("http://" + "a" * 64 + ".com/", "that IDNA cannot encode: label empty or too long"),
        ("http://exa<mple.com/", "characters not allowed in a host"),
        ("http://ex%2Fample.com/", "percent-decodes to a forbidden '/'"),
        ("http://ex%ffample.com/", "percent-decodes to invalid UTF-8"),
        ("http://1.2.3.999/", "is not a valid IPv4 address"),
        ("http://010.0.0.1/", "is not a valid IPv4 address"),
        ("http://example.123/", "is not a valid IPv4 address"),
        ("http://[::1/", "URL cannot be parsed"),
        ("http://[fe80::1%25eth0]/", "has an IPv6 zone"),
        ("http://example.com/" + "a" * MAX_URL_LENGTH, "over the limit 8192"),
        ("http://example.com/" + "ü" * 3000, "once normalised, over the limit 8192"),
    ],
)
def test_rejections_say_what_is_wrong(bad: str, message: str) -> None:
    with pytest.raises(InvalidSignal, match=re.escape(message)):
        URL.normalize(bad)


def test_signal_metadata() -> None:
    assert (URL.name, URL.comparison) == ("url", "exact")
    assert URL.distance("http://a.example/", "http://a.example/") == 0
    assert URL.distance("http://a.example/", "http://b.example/") == 1


# --- properties -------------------------------------------------------------------------

_LABEL = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789üéß", min_size=1, max_size=8)
_HOST = (
    st.lists(_LABEL, min_size=1, max_size=4)
    .map(".".join)
    .filter(lambda host: not host.split(".")[-1].isdigit())
)
# Path text without "%": the transformations below add escapes, and a "%" in the base could
# pair up with an added one into a different escape.
_SEGMENT = st.text(
    alphabet=st.characters(
        codec="utf-8", exclude_categories=("Cc", "Cf", "Cs", "Zs", "Zl", "Zp", "Co", "Cn")
    ).filter(lambda c: c not in "/?#%\\"),
    max_size=6,
)
_QUERY = st.text(alphabet="abcXYZ019=&+-._~!$'()*,;:@/?", max_size=12)


@st.composite
def _url_parts(draw: st.DrawFn) -> tuple[str, str, list[str], str]:
    scheme = draw(st.sampled_from(["http", "https"]))
    return scheme, draw(_HOST), draw(st.lists(_SEGMENT, max_size=5)), draw(_QUERY)


def _build(scheme: str, authority: str, segments: list[str], query: str) -> str:
    return f"{scheme}://{authority}/{'/'.join(segments)}" + (f"?{query}" if query else "")


# Escaping one of these changes what the URL means (RFC 3986 section 2.2), so they stay.
_MEANINGFUL = frozenset("!$&'()*+,;=:@")


def _respell(text: str, draw: st.DrawFn) -> str:
    """Percent-encode some characters, with hex in either case."""
    out = []
    for char in text:
        if char not in _MEANINGFUL and draw(st.booleans()):
            for byte in char.encode("utf-8"):
                escape = f"{byte:02x}"
                out.append("%" + (escape.upper() if draw(st.booleans()) else escape))
        else:
            out.append(char)
    return "".join(out)


@st.composite
def _equivalent_pair(draw: st.DrawFn) -> tuple[str, str]:
    scheme, host, segments, query = draw(_url_parts())
    base = _build(scheme, host, segments, query)

    variant_scheme = "".join(c.upper() if draw(st.booleans()) else c for c in scheme)
    variant_host = host.upper() if draw(st.booleans()) else host
    if draw(st.booleans()):
        variant_host += "."
    if draw(st.booleans()):
        variant_host += ":" + ("80" if scheme == "http" else "443")
    if draw(st.booleans()):
        variant_host = "@" + variant_host
    variant_segments = []
    for segment in segments:
        # Neutral detours before a segment: "./" and "x/../".
        variant_segments += draw(st.sampled_from([[], ["."], ["detour", ".."]]))
        variant_segments.append(_respell(segment, draw) if segment not in (".", "..") else segment)
    variant = _build(variant_scheme, variant_host, variant_segments, query)
    if draw(st.booleans()):
        variant += "#" + draw(st.text(alphabet="abc#?/%", max_size=5))
    return base, variant


@given(_equivalent_pair())
def test_equivalent_spellings_normalise_equal(pair: tuple[str, str]) -> None:
    base, variant = pair
    try:
        canonical = normalize_url(base)
    except InvalidSignal:
        # e.g. a generated label that IDNA refuses: the variant must be refused as well.
        with pytest.raises(InvalidSignal):
            normalize_url(variant)
        return
    assert normalize_url(variant) == canonical


def _assert_idempotent(url: str) -> None:
    try:
        canonical = normalize_url(url)
    except InvalidSignal:
        return
    assert normalize_url(canonical) == canonical
    assert canonical.isascii()
    assert canonical.startswith(("http://", "https://"))
    assert "#" not in canonical
    assert not any(char.isspace() for char in canonical)


@given(_url_parts(), st.text(max_size=10), st.text(max_size=10))
def test_idempotent_on_url_like_text(
    parts: tuple[str, str, list[str], str], noise_path: str, noise_query: str
) -> None:
    scheme, host, segments, query = parts
    _assert_idempotent(_build(scheme, host, [*segments, noise_path], query + noise_query))


@given(st.text(max_size=60))
@example("http://a.b/%%41")
@example("http://a.b/%2541")
@example("http://[::ffff:1.2.3.4]/")
@example("http://a:b:c@d.e/")
def test_idempotent_on_any_text(text: str) -> None:
    _assert_idempotent("http://" + text)
    _assert_idempotent(text)
