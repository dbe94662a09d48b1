"""Running one documented operation through Schemathesis-generated requests, bounded in count."""

from collections.abc import Callable

import requests
import schemathesis
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tests.fuzz._checks import CHECKS
from tests.fuzz.conftest import FUZZ_EXAMPLES

Send = Callable[[schemathesis.Case], requests.Response | schemathesis.Response]
Inspect = Callable[[schemathesis.Case, requests.Response | schemathesis.Response], None]
Relevant = Callable[[schemathesis.Case], bool]


#: The statuses that refuse invalid input (426: a plain request to a WebSocket route).
REFUSALS = [str(s) for s in (400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 426, 428, 429)]


def fuzz_config() -> schemathesis.Config:
    """How requests are generated and judged.

    A WebSocket handshake's 101 is a success, not a server error, and 426 (a plain request to a
    WebSocket route) a refusal of invalid input. Query parameters the document does not name
    are not generated: both services ignore unknown parameters on purpose (old and new clients
    keep working), so such a request is not invalid input.
    """
    return schemathesis.Config.from_dict(
        {
            "generation": {"database": "none", "allow-extra-parameters": False},
            "checks": {
                "not_a_server_error": {"expected-statuses": ["101", "2xx", "3xx", "4xx"]},
                "negative_data_rejection": {"expected-statuses": REFUSALS},
                "positive_data_acceptance": {
                    "expected-statuses": ["101", "2xx", "401", "403", "404", "429"]
                },
            },
        }
    )


def fuzz_operation(
    schema: schemathesis.BaseSchema,
    label: str,
    send: Send,
    *,
    inspect: Inspect | None = None,
    relevant: Relevant | None = None,
) -> None:
    """Send valid and invalid requests for ``label``; each reply must pass every check.

    Half the examples follow the document, half break it in one place or more; ``inspect``
    adds checks of the caller's own, and cases ``relevant`` rejects are not sent.
    """
    operation = schema.find_operation_by_label(label)
    assert operation is not None, f"{label} is not in the document"
    cases = st.one_of(
        operation.as_strategy(schemathesis.GenerationMode.POSITIVE),
        operation.as_strategy(schemathesis.GenerationMode.NEGATIVE),
    )

    @settings(
        max_examples=FUZZ_EXAMPLES,
        deadline=None,
        database=None,
        # A shared, busy machine makes requests slow; that is not the property under test.
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(case=cases)
    def keeps_contract(case: schemathesis.Case) -> None:
        if relevant is not None:
            assume(relevant(case))
        response = send(case)
        if inspect is not None:
            inspect(case, response)
        case.validate_response(response, checks=CHECKS)

    keeps_contract()
