"""Error parsing: the human message of each API's error bodies, scrubbed and cut. No sockets."""

from __future__ import annotations

import json
import pickle

import pytest

from airflow_provider_fluents_tines.exceptions import ApiClientError, extract_api_message
from airflow_provider_fluents_tines.version_compat import AirflowFailException


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"message": ["label must be a string"], "error": "Bad Request", "statusCode": 400},
            "label must be a string",
        ),
        (
            {"detail": [{"loc": ["body", "config", "phone_number"], "msg": "invalid"}]},
            "config.phone_number: invalid",
        ),
        ({"errors": [{"message": "Action not found"}]}, "Action not found"),
        ({"errors": {"name": ["can't be blank"]}}, "name can't be blank"),
        ({"error": "Rate limited"}, "Rate limited"),
        (["first", "second"], "first; second"),
    ],
)
def test_each_apis_error_shape_gives_its_message(body, message):
    assert extract_api_message(json.dumps(body)) == message


def test_plain_text_empty_bodies_and_bytes():
    assert extract_api_message("<html>502</html>") == "<html>502</html>"
    assert extract_api_message("") == "(empty body)"
    assert extract_api_message(None) == "(empty body)"
    assert extract_api_message(b'{"error": "x"}') == "x"


def test_secrets_are_scrubbed_before_the_message_is_cut():
    key = "tines-key-0123456789"
    body = "x" * 495 + key + "y" * 20
    message = extract_api_message(body, secrets=[key])
    # Scrubbed first: the cut at 500 characters cannot leave the start of the key behind.
    assert key[:5] not in message and message.endswith("...")
    assert key not in extract_api_message(json.dumps({"error": f"bad key {key}"}), secrets=[key])


def test_control_characters_are_escaped():
    assert extract_api_message('{"error": "line\\nforged"}') == "line\\nforged"


def test_errors_survive_pickling_with_their_fields():
    # Airflow moves exceptions between processes: status and retryability must travel.
    err = ApiClientError(
        service="Tines",
        method="PUT",
        path="/api/v1/actions/1",
        http_status=404,
        api_message="gone",
        retryable=False,
    )
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is ApiClientError and isinstance(again, AirflowFailException)
    assert (again.http_status, again.retryable, str(again)) == (404, False, str(err))
