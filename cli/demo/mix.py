"""What ``outbox demo`` sends: a realistic day's mix, and what each send should become.

The plan is data, built before anything is sent, so the demo can check the outcome
against it afterwards: every deliverable recipient reaches the sandbox exactly once, the
suppressed reader is accepted by the API and then rejected (its chunk ends ``sent``; the
sandbox never delivers to it), and the invalid sends are refused by the producer with
nothing enqueued.

For ``n`` recipients: one 250-reader newsletter (3 chunks, one reader suppressed),
about 10 % transactional emails (one recipient each), 3 % welcome emails from a stored
template, 1 % MIME receipts, 5 % SMS reminders in one send, three invalid sends, and a
member announcement to everyone else (over 1,000 recipients goes to the ``bulk`` queue).

The announcement is the plan's campaign: the send the quota phase holds back until the
rest is delivered, then queues when the month's allowance is too short for it
(:mod:`.quota`).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from functools import partial

from outbox import Handle, send_email, send_mime, send_sms, send_template
from outbox.chunking import chunk_count

__all__ = [
    "CAMPAIGN",
    "GROUPS",
    "MIN_RECIPIENTS",
    "NEWSLETTER_SIZE",
    "SUPPRESSED_ADDRESS",
    "TEMPLATE_ID",
    "Plan",
    "PlannedSend",
    "announcement_size",
    "build_plan",
]

#: The newsletter is one send of 250 readers: three chunks of at most 100.
NEWSLETTER_SIZE = 250
#: Fewer recipients leave no room for the rest of the mix beside the newsletter.
MIN_RECIPIENTS = 400
#: The stored template the welcome emails use (created in the sandbox first).
TEMPLATE_ID = "welcome-01"
#: A reader who unsubscribed at SMTP2GO: on the API's suppression list, not ours.
SUPPRESSED_ADDRESS = "unsubscribed.reader@example.org"

#: The group of the plan's campaign, the send the quota phase is about.
CAMPAIGN = "announcement"

#: The summary's rows, in this order.
GROUPS = (
    "transactional",
    "welcome (template)",
    "receipt (MIME)",
    "reminder (SMS)",
    "newsletter",
    "announcement",
    "invalid",
)

SHOP = "Acme Shop <shop@example.com>"
#: A reminder scheduled a few seconds ahead for an order that is refunded at once: the
#: demo cancels it, and its time passes with nothing sent.
REFUNDED = "refunded@example.com"
REMINDER_AFTER = 3.0


def schedule_reminder(run: str) -> Handle:
    """The reminder the demo takes back (``outbox.cancel``) before its time."""
    import time

    return send_email(
        SHOP,
        [REFUNDED],
        "Your order ships tomorrow",
        text_body="Order #10999 ships tomorrow.",
        send_at=time.time() + REMINDER_AFTER,
        idempotency_key=f"demo-{run}-reminder",
    )


NEWS = "Acme News <news@example.com>"
HELLO = "Acme <hello@example.com>"


@dataclass(frozen=True, slots=True)
class PlannedSend:
    """One producer call and what it should lead to."""

    #: The group it belongs to in the summary ("transactional", "newsletter", ...).
    group: str
    kind: str
    call: Callable[[], Handle] = field(repr=False)
    #: Every recipient the call names.
    recipients: tuple[str, ...]
    #: Named recipients the API will refuse (in ``failures``); still recorded as sent.
    suppressed: tuple[str, ...] = ()
    #: The producer must refuse the call (``ValidationError``) and enqueue nothing.
    invalid: bool = False

    @property
    def chunks(self) -> int:
        """API requests it should take (one per 100 recipients; none when refused)."""
        return 0 if self.invalid else chunk_count(len(self.recipients))

    @property
    def deliverable(self) -> tuple[str, ...]:
        if self.invalid:
            return ()
        blocked = set(self.suppressed)
        return tuple(r for r in self.recipients if r not in blocked)


@dataclass(frozen=True, slots=True)
class Plan:
    sends: list[PlannedSend]
    template_id: str = TEMPLATE_ID
    suppressed: str = SUPPRESSED_ADDRESS
    #: What makes this run's idempotency keys its own.
    run: str = ""

    @property
    def recipients(self) -> int:
        return sum(len(s.recipients) for s in self.sends)

    @property
    def invalid_recipients(self) -> int:
        return sum(len(s.recipients) for s in self.sends if s.invalid)

    @property
    def chunks(self) -> int:
        return sum(s.chunks for s in self.sends)

    @property
    def deliverable(self) -> list[str]:
        return [r for s in self.sends for r in s.deliverable]

    @property
    def campaign(self) -> PlannedSend:
        """The member announcement: the largest send, and the last of the quota phase."""
        return next(s for s in self.sends if s.group == CAMPAIGN)


def _receipt(run: str, i: int, to: str) -> str:
    message = EmailMessage()
    message["From"] = SHOP
    message["To"] = to
    message["Subject"] = f"Receipt for order #{30000 + i}"
    message["Message-ID"] = f"<receipt-{run}-{i}@example.com>"
    message.set_content(f"Thanks for your order #{30000 + i}. Your receipt is attached.\n")
    message.add_attachment(
        f"Order #{30000 + i}\nTotal: 42.00 EUR\n".encode(),
        maintype="text",
        subtype="plain",
        filename=f"receipt-{30000 + i}.txt",
    )
    return message.as_string()


_TRANSACTIONAL = (
    ("Your order #{n} is confirmed", "Thanks! We are packing order #{n} now."),
    ("Order #{n} has shipped", "Good news: order #{n} is on its way."),
    ("Reset your password", "Use this link within an hour to choose a new password."),
    ("Your sign-in code", "Your code is {code}. It expires in 10 minutes."),
)


#: The invalid sends: (kind, the bad address or number).
_INVALID = (
    ("email", "jane.doe@example"),  # a typo from a sign-up form: no top-level domain
    ("email", "not-an-address"),
    ("sms", "0412 345 678"),  # a local number, not E.164
)


def _shares(n: int) -> tuple[int, int, int, int]:
    """Recipients of the transactional, welcome, receipt and SMS sends for ``n`` in all."""
    return round(n * 0.10), round(n * 0.03), max(2, round(n * 0.01)), max(5, round(n * 0.05))


def announcement_size(n: int) -> int:
    """Recipients of the announcement (the campaign) in the mix for ``n``: everyone else."""
    return n - NEWSLETTER_SIZE - sum(_shares(n)) - len(_INVALID)


def build_plan(n: int, *, run: str, seed: int | None = None) -> Plan:
    """The mix for ``n`` recipients, in the order a busy app would send it.

    ``run`` makes idempotency keys unique to this run, so a second demo against the same
    Redis is not answered with the first one's records.
    """
    if n < MIN_RECIPIENTS:
        raise ValueError(f"the demo needs at least {MIN_RECIPIENTS} recipients, not {n}")
    rng = random.Random(seed)
    sends: list[PlannedSend] = []

    def add(
        group: str,
        kind: str,
        call: Callable[[], Handle],
        to: list[str],
        *,
        suppressed: tuple[str, ...] = (),
        invalid: bool = False,
    ) -> None:
        sends.append(PlannedSend(group, kind, call, tuple(to), suppressed, invalid))

    transactional, welcomes, receipts, phones = _shares(n)
    members = announcement_size(n)

    readers = [f"reader{i:03d}@example.org" for i in range(NEWSLETTER_SIZE - 1)]
    readers.insert(rng.randrange(len(readers)), SUPPRESSED_ADDRESS)
    newsletter = partial(
        send_email,
        NEWS,
        readers,
        "Acme Weekly: spring collection",
        html_body="<h1>Spring is here</h1><p>Ten new things we love.</p>",
        text_body="Spring is here. Ten new things we love.",
        idempotency_key=f"demo-{run}-newsletter",
    )
    newsletter_send = PlannedSend(
        "newsletter", "email", newsletter, tuple(readers), (SUPPRESSED_ADDRESS,)
    )
    for i in range(transactional):
        to = f"customer{i:05d}@example.com"
        subject, body = _TRANSACTIONAL[i % len(_TRANSACTIONAL)]
        fmt = {"n": 10000 + i, "code": f"{rng.randrange(10**6):06d}"}
        call = partial(
            send_email,
            SHOP,
            [to],
            subject.format(**fmt),
            text_body=body.format(**fmt),
            idempotency_key=f"demo-{run}-tx-{i}",
        )
        add("transactional", "email", call, [to])
    for i in range(welcomes):
        to = f"newuser{i:04d}@example.net"
        data = {"name": f"User {i}", "account": f"AC-{5000 + i}"}
        add(
            "welcome (template)",
            "template",
            partial(send_template, HELLO, [to], TEMPLATE_ID, data),
            [to],
        )
    for i in range(receipts):
        to = f"buyer{i:04d}@example.com"
        add("receipt (MIME)", "mime", partial(send_mime, _receipt(run, i, to)), [to])
    numbers = [f"+6140{i:07d}" for i in range(phones)]
    reminder = "Acme: your delivery arrives today between 2 and 4 pm."
    add("reminder (SMS)", "sms", partial(send_sms, numbers, reminder), numbers)
    for kind, bad in _INVALID:
        if kind == "sms":
            call = partial(send_sms, [bad], "Your code is 123456")
        else:
            call = partial(send_email, SHOP, [bad], "Welcome", text_body="Hi")
        add("invalid", kind, call, [bad], invalid=True)
    everyone = [f"member{i:05d}@example.net" for i in range(members)]
    announcement = PlannedSend(
        CAMPAIGN,
        "email",
        partial(
            send_email,
            NEWS,
            everyone,
            "New: free returns for members",
            html_body="<p>From today every member gets free returns.</p>",
            text_body="From today every member gets free returns.",
            idempotency_key=f"demo-{run}-announcement",
        ),
        tuple(everyone),
    )
    # Transactional traffic all along; the two campaigns start early, a few sends apart.
    rng.shuffle(sends)
    sends.insert(min(len(sends), 3), newsletter_send)
    sends.insert(min(len(sends), 12), announcement)
    return Plan(sends, run=run)
