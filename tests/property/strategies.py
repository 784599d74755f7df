"""Hypothesis strategies for producer input: mostly valid, with the bad kinds mixed in.

Shared by the property tests (``tests/property/test_producers.py``) and the real-worker
check (``tests/integration/test_faults_input.py``).
"""

from __future__ import annotations

import base64
from typing import Any

from hypothesis import strategies as st


def mostly(valid: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``valid`` about four times in five: a call has many fields, and if each were bad
    half the time nearly every call would be refused and nothing ever delivered."""
    return st.integers(min_value=0, max_value=4).flatmap(lambda i: bad if i == 0 else valid)


printable = st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"])
_local = st.from_regex(r"[a-z0-9]{1,8}(?:[.+_-][a-z0-9]{1,8}){0,2}", fullmatch=True)
_domain = st.sampled_from(["example.com", "example.org", "mail.example.net", "exämple.com"])
bare_address = st.builds(lambda local, domain: f"{local}@{domain}", _local, _domain)
display_name = mostly(
    st.text(st.characters(categories=["L", "M", "N", "Zs"]), max_size=24),
    st.text(printable, max_size=24)
    | st.sampled_from(['Ann "The" Smith', "Ann, Bob", "Zoë <", "Ann\r\nBcc: x@example.org"]),
)
named_address = st.builds(lambda name, addr: f"{name} <{addr}>", display_name, bare_address)
junk_address = st.text(max_size=30) | st.sampled_from(
    ["", "a@", "@b.com", "a@b", "a b@example.com", "a@example.com, b@example.com", "a@x.test"]
)
address = mostly(bare_address | named_address, junk_address)

injection = st.sampled_from(["\r\nBcc: victim@example.org", "\nX-Evil: 1", "\r", "\x00"])
header_text = mostly(
    st.text(printable, max_size=60),
    st.builds(lambda t, bad: t + bad, st.text(printable, max_size=20), injection)
    | st.text(printable, min_size=128, max_size=140),  # past the 127 characters allowed
)
subject = mostly(
    st.text(printable, min_size=1, max_size=80),
    st.builds(lambda t, bad: t + bad, st.text(printable, max_size=20), injection)
    | st.text(printable, min_size=256, max_size=270)
    | st.none(),
)
header_name = mostly(
    st.from_regex(r"X-[A-Za-z0-9-]{1,20}", fullmatch=True),
    st.sampled_from(["Content-Type", "MIME-Version", "X Bad", "X-A:b", "X-\u00e9", "", "Reply-To"]),
)
custom_headers = st.dictionaries(header_name, header_text, max_size=3)
body = st.one_of(
    st.text(max_size=500),  # bodies may hold any character, line breaks included
    st.text(max_size=500),
    st.integers(min_value=10_000, max_value=200_000).map(lambda n: "x" * n),
    st.none(),
)
blob = mostly(
    st.binary(max_size=3000).map(lambda b: base64.b64encode(b).decode()),
    st.sampled_from(["!!!", "aGk", "a", "====", "not base64 at all", ""]),
)
filename = mostly(
    st.from_regex(r"[A-Za-z0-9_-]{1,12}\.(txt|pdf|png)", fullmatch=True),
    st.text(max_size=20),
)
attachment = st.fixed_dictionaries({"filename": filename, "fileblob": blob})
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=25,
)
template_data = mostly(
    st.dictionaries(st.text(max_size=10), json_values, max_size=5),
    st.dictionaries(st.integers(), st.integers(), min_size=1, max_size=2)  # keys not strings
    | st.sampled_from(["not a mapping", [("a", 1)], 5]),
)
e164 = st.from_regex(r"\+[1-9][0-9]{6,14}", fullmatch=True)
phone = mostly(
    e164,
    st.sampled_from(["0400 000 000", "+0123456789", "+1234", "61400000000", "+6140000000a", ""])
    | st.text(max_size=16),
)
sms_text = mostly(st.text(min_size=1, max_size=400).filter(str.strip), st.sampled_from(["", "   "]))


def nested(depth: int) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for _ in range(depth):
        data = {"a": data}
    return data


#: Emails the producers accept (the generated ones with nothing bad in them), for the
#: real-worker check.
good_filename = st.from_regex(r"[A-Za-z0-9_-]{1,12}\.(txt|pdf|png)", fullmatch=True)
good_name = st.text(st.characters(categories=["L", "M", "N", "Zs"]), max_size=24)
good_address = bare_address | st.builds(lambda n, a: f"{n} <{a}>", good_name, bare_address)
good_email = st.fixed_dictionaries(
    {
        "sender": good_address,
        "to": st.lists(good_address, min_size=1, max_size=3),
        "subject": st.text(printable, min_size=1, max_size=120),
        "text_body": st.text(min_size=1, max_size=2000),
        "html_body": st.none() | st.text(max_size=500),
        "custom_headers": st.dictionaries(
            st.from_regex(r"X-[A-Za-z0-9-]{1,20}", fullmatch=True),
            st.text(printable, max_size=100),
            max_size=3,
        ),
        "attachments": st.lists(
            st.fixed_dictionaries(
                {
                    "filename": good_filename,
                    "fileblob": st.binary(min_size=1, max_size=3000).map(
                        lambda b: base64.b64encode(b).decode()
                    ),
                }
            ),
            max_size=2,
        ),
    }
)
