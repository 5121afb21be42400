"""Trace-level cases as data (HolmesGPT-eval style): each case is spans plus the expected answer.

`locus` is (service, operation, span name) or None for a healthy trace; `patterns` lists the
(kind, service, operation, count) the trace must show; `why` lists words the explanation must hold.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tests.brain.builders import S


@dataclass(frozen=True)
class Case:
    name: str
    spans: list[S]
    locus: tuple[str, str, str] | None
    patterns: list[tuple[str, str, str, int]] = field(default_factory=list)
    why: list[str] = field(default_factory=list)


def _n_plus_one(serial: bool) -> list[S]:
    spans = [
        S("root", "", "frontend", "GET /orders", 0, 130),
        S("srv", "root", "orders", "GET /orders", 1, 128),
    ]
    for i in range(10):
        start = 2 + (12 * i if serial else 0.5 * i)
        spans.append(S(f"q{i}", "srv", "orders", "SELECT item", start, start + 10, kind=3))
    return spans


CASES: list[Case] = [
    Case(
        name="healthy",
        spans=[
            S("root", "", "frontend", "GET /", 0, 50),
            S("c1", "root", "frontend", "cart.get", 2, 20, kind=3),
            S("s1", "c1", "cart", "GET /cart", 3, 19),
            S("c2", "root", "frontend", "recs.list", 21, 48, kind=3),
            S("s2", "c2", "recommendation", "GET /recs", 22, 47),
        ],
        locus=None,
        why=["no span failed", "recommendation"],
    ),
    Case(
        # The caller times out at 800 ms; the callee keeps running to 3000 ms with status OK, and
        # inside it the database call is what hangs.
        name="timeout_caller_hanging_callee",
        spans=[
            S("root", "", "frontend", "POST /checkout", 0, 805, error=True, http=504),
            S("cc", "root", "frontend", "checkout.place", 1, 803, error=True, kind=3),
            S("cs", "cc", "checkout", "POST /checkout", 2, 3002),
            S("pc", "cs", "checkout", "payment.charge", 3, 20, kind=3),
            S("ps", "pc", "payment", "POST /payments", 4, 19),
            S("sc", "cs", "checkout", "shipping.quote", 21, 3000, kind=3),
            S("ss", "sc", "shipping", "POST /quote", 22, 2999),
            S("db", "ss", "shipping", "SELECT rates", 23, 2998, kind=3),
        ],
        locus=("shipping", "SELECT rates", "db"),
        why=["still running", "used up the budget"],
    ),
    Case(
        # The caller's client span is the only error (DEADLINE_EXCEEDED); the callee ran past it.
        name="timeout_only_error_grpc",
        spans=[
            S("root", "", "frontend", "GET /product", 0, 300),
            S("rc", "root", "frontend", "recs.list", 1, 250, error=True, kind=3, grpc=4),
            S("rs", "rc", "recommendation", "ListRecommendations", 2, 900),
            S("cat", "root", "frontend", "catalog.get", 251, 290, kind=3),
            S("cats", "cat", "catalog", "GetProduct", 252, 289),
        ],
        locus=("recommendation", "ListRecommendations", "rs"),
        why=["still running"],
    ),
    Case(
        # Two failing siblings: inventory fails first, shipping fails afterwards because it needs the
        # reservation. The earlier one is the origin.
        name="two_failing_siblings",
        spans=[
            S("root", "", "frontend", "POST /checkout", 0, 100, error=True, http=500),
            S("cs", "root", "checkout", "POST /checkout", 1, 99, error=True, http=500),
            S("ic", "cs", "checkout", "inventory.reserve", 2, 30, error=True, kind=3),
            S("is", "ic", "inventory", "POST /reserve", 3, 29, error=True, http=500),
            S("shc", "cs", "checkout", "shipping.quote", 32, 60, error=True, kind=3),
            S("shs", "shc", "shipping", "POST /quote", 33, 59, error=True, http=500),
        ],
        locus=("inventory", "POST /reserve", "is"),
        why=["failed only after it"],
    ),
    Case(
        # Retries: three attempts, each failing in payment; one failure, not three.
        name="retries",
        spans=[
            S("root", "", "frontend", "POST /checkout", 0, 200, error=True, http=500),
            S("cs", "root", "checkout", "POST /checkout", 1, 199, error=True, http=500),
            *[
                s
                for i in range(3)
                for s in (
                    S(
                        f"a{i}",
                        "cs",
                        "checkout",
                        "payment.charge",
                        2 + 60 * i,
                        50 + 60 * i,
                        error=True,
                        kind=3,
                    ),
                    S(
                        f"p{i}",
                        f"a{i}",
                        "payment",
                        "POST /payments",
                        3 + 60 * i,
                        49 + 60 * i,
                        error=True,
                        http=503,
                    ),
                )
            ],
        ],
        locus=("payment", "POST /payments", "p0"),
        why=["repeated 3 times", "retries"],
    ),
    Case(
        name="deepest_failing_span",
        spans=[
            S("root", "", "frontend", "GET /cart", 0, 40, error=True, http=500),
            S("fc", "root", "frontend", "cart.get", 1, 39, error=True, kind=3),
            S(
                "cs",
                "fc",
                "cart",
                "GET /cart",
                2,
                38,
                error=True,
                http=500,
                events=[
                    {
                        "name": "exception",
                        "time_ns": 0,
                        "attributes": {"exception.type": "KeyError"},
                    }
                ],
            ),
            S("db", "cs", "cart", "SELECT cart", 3, 10, kind=3),
            S("cache", "cs", "cache", "GET", 11, 12),
        ],
        locus=("cart", "GET /cart", "cs"),
        why=["KeyError", "children succeeded"],
    ),
    Case(
        # A callee that never answered (no span from it): the client span is the locus.
        name="callee_down_no_span",
        spans=[
            S("root", "", "frontend", "POST /checkout", 0, 30, error=True, http=502),
            S("cc", "root", "frontend", "checkout.place", 1, 5, error=True, kind=3),
        ],
        locus=("frontend", "checkout.place", "cc"),
    ),
    Case(
        name="n_plus_one",
        spans=_n_plus_one(serial=True),
        locus=None,
        patterns=[("n_plus_one", "orders", "SELECT item", 10)],
        why=["N+1"],
    ),
    Case(
        name="fan_out_is_not_n_plus_one",
        spans=_n_plus_one(serial=False),
        locus=None,
        patterns=[("fan_out", "orders", "SELECT item", 10)],
    ),
    Case(
        # Business failure: HTTP 200 with a declined payment, nothing else failing.
        name="business_failure",
        spans=[
            S("root", "", "frontend", "POST /checkout", 0, 60, http=200),
            S("pc", "root", "checkout", "payment.charge", 1, 50, kind=3),
            S(
                "ps",
                "pc",
                "payment",
                "POST /payments",
                2,
                49,
                http=200,
                attrs={"app.payment.outcome": "declined"},
            ),
        ],
        locus=("payment", "POST /payments", "ps"),
        why=["app.payment.outcome=declined", "handled"],
    ),
]
