"""llms/sigv4.py against AWS's published Signature Version 4 test suite.

The vectors are the suite's (aws-sig-v4-test-suite, header form): access key AKIDEXAMPLE, the
suite's example secret, region us-east-1, service `service`, 2015-08-30T12:36:00Z. Each case
checks the canonical request and the signature; the suite writes the request's path raw (`/ሴ`,
`/example space/`), which is what encoding once means.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from llms.sigv4 import Credentials, canonical_request, sign, signature

SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
DATE = "20150830T123600Z"
EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
HOST = ("Host", "example.amazonaws.com")
XDATE = ("X-Amz-Date", DATE)
TOKEN = (
    "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPf"
    "IeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7"
    "WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm"
    "8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA=="
)

# (name, method, path, query, headers, canonical path/query/header lines, signature)
VECTORS = [
    (
        "get-vanilla",
        "GET",
        "/",
        "",
        [HOST, XDATE],
        "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date",
        "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
    ),
    (
        "post-vanilla",
        "POST",
        "/",
        "",
        [HOST, XDATE],
        "POST\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date",
        "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
    ),
    (
        "get-vanilla-query-order-key-case",
        "GET",
        "/",
        "Param2=value2&Param1=value1",
        [HOST, XDATE],
        "GET\n/\nParam1=value1&Param2=value2\nhost:example.amazonaws.com\n"
        "x-amz-date:20150830T123600Z\n\nhost;x-amz-date",
        "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
    ),
    (
        "get-vanilla-utf8-query",
        "GET",
        "/",
        "ሴ=bar",
        [HOST, XDATE],
        "GET\n/\n%E1%88%B4=bar\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
        "host;x-amz-date",
        "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04",
    ),
    (
        "get-header-key-duplicate",
        "GET",
        "/",
        "",
        [HOST, ("My-Header1", "value2"), ("My-Header1", "value2"), ("My-Header1", "value1"), XDATE],
        "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value2,value2,value1\n"
        "x-amz-date:20150830T123600Z\n\nhost;my-header1;x-amz-date",
        "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea",
    ),
    (
        "get-header-value-trim",
        "GET",
        "/",
        "",
        [HOST, ("My-Header1", " value1"), ("My-Header2", ' "a   b   c"'), XDATE],
        'GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value1\nmy-header2:"a b c"\n'
        "x-amz-date:20150830T123600Z\n\nhost;my-header1;my-header2;x-amz-date",
        "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736",
    ),
    (
        "get-unreserved",
        "GET",
        "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
        "",
        [HOST, XDATE],
        "GET\n/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz\n\n"
        "host:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date",
        "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f",
    ),
    (
        "get-utf8",
        "GET",
        "/ሴ",
        "",
        [HOST, XDATE],
        "GET\n/%E1%88%B4\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
        "host;x-amz-date",
        "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85",
    ),
    (
        "get-space-unnormalized",
        "GET",
        "/example space/",
        "",
        [HOST, XDATE],
        "GET\n/example%20space/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
        "host;x-amz-date",
        "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741",
    ),
    (
        "get-slashes-unnormalized",
        "GET",
        "//example//",
        "",
        [HOST, XDATE],
        "GET\n//example//\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
        "host;x-amz-date",
        "87cca117541a147f6df867677d98a7d80dff226d2bfca9e4ffa899665623c7e5",
    ),
    (
        "post-header-value-case",
        "POST",
        "/",
        "",
        [HOST, ("My-Header1", "VALUE1"), XDATE],
        "POST\n/\n\nhost:example.amazonaws.com\nmy-header1:VALUE1\nx-amz-date:20150830T123600Z\n\n"
        "host;my-header1;x-amz-date",
        "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d",
    ),
    (
        "post-sts-header-after",
        "POST",
        "/",
        "",
        [HOST, XDATE, ("X-Amz-Security-Token", TOKEN)],
        "POST\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n"
        f"x-amz-security-token:{TOKEN}\n\nhost;x-amz-date;x-amz-security-token",
        "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead",
    ),
]


@pytest.mark.parametrize(
    ("method", "path", "query", "headers", "expected", "sig"),
    [v[1:] for v in VECTORS],
    ids=[v[0] for v in VECTORS],
)
def test_the_aws_suite(
    method: str, path: str, query: str, headers: list[tuple[str, str]], expected: str, sig: str
) -> None:
    canonical = canonical_request(method, path, query, headers, EMPTY)
    assert canonical == f"{expected}\n{EMPTY}"
    assert signature(SECRET, DATE, "us-east-1", "service", canonical) == sig


NOW = datetime(2015, 8, 30, 12, 36, tzinfo=UTC)


def test_sign_gives_the_suite_authorization_header() -> None:
    headers = sign(
        "POST",
        "https://example.amazonaws.com/",
        {},
        b"",
        credentials=Credentials("AKIDEXAMPLE", SECRET, TOKEN),
        region="us-east-1",
        service="service",
        now=NOW,
    )
    assert headers == {
        "X-Amz-Date": DATE,
        "X-Amz-Security-Token": TOKEN,
        "Authorization": "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
        "aws4_request, SignedHeaders=host;x-amz-date;x-amz-security-token, "
        "Signature=85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead",
    }


def test_sign_without_a_session_token_and_with_a_body() -> None:
    # The suite's post-x-www-form-urlencoded case: the body's hash is signed, content-type too.
    headers = sign(
        "POST",
        "https://example.amazonaws.com/",
        {"Content-Type": "application/x-www-form-urlencoded"},
        b"Param1=value1",
        credentials=Credentials("AKIDEXAMPLE", SECRET),
        region="us-east-1",
        service="service",
        now=NOW,
    )
    assert "X-Amz-Security-Token" not in headers
    assert headers["Authorization"].endswith(
        "SignedHeaders=content-type;host;x-amz-date, "
        "Signature=ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"
    )


def test_a_bedrock_model_id_is_signed_as_aws_reads_the_path() -> None:
    # yarl sends `%3A` as `:`; AWS encodes the received path once more for a non-S3 service.
    headers = sign(
        "POST",
        "https://bedrock-runtime.us-east-1.amazonaws.com/model/"
        "arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Ainference-profile%2Fus.a-v1%3A0/converse",
        {"Content-Type": "application/json"},
        b"{}",
        credentials=Credentials("AKIDEXAMPLE", SECRET),
        region="us-east-1",
        service="bedrock",
        now=NOW,
    )
    path = "/model/arn:aws:bedrock:us-east-1:1:inference-profile%2Fus.a-v1:0/converse"
    canonical = canonical_request(
        "POST",
        path,
        "",
        [
            ("content-type", "application/json"),
            ("host", "bedrock-runtime.us-east-1.amazonaws.com"),
            ("x-amz-date", DATE),
        ],
        "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
    )
    assert "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Ainference-profile%252Fus.a-v1%3A0/" in (
        canonical
    )
    expected = signature(SECRET, DATE, "us-east-1", "bedrock", canonical)
    assert headers["Authorization"].endswith(f"Signature={expected}")


def test_credentials_never_show_the_secret() -> None:
    assert SECRET not in repr(Credentials("AKIDEXAMPLE", SECRET, TOKEN))
    assert TOKEN not in repr(Credentials("AKIDEXAMPLE", SECRET, TOKEN))
