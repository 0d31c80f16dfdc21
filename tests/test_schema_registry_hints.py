"""The schema registry's own error hints (collectors/schema_registry/hints.py): its error codes and a 404 on its
root paths, registered with the core's hint_for for the schema_registry components."""

from __future__ import annotations

import collectors.schema_registry  # noqa: F401  (registers the hints)
from monitoring.errors import hint_for


def test_registry_code_hints_name_the_subject():
    message = "RegistryError: GET /subjects/orders-value/versions/latest: HTTP 404, error 40401: Subject not found."
    assert hint_for("http_error", message, "http://r:8081", "schema_registry").startswith(
        "Error 40401: subject orders-value does not exist on the registry at http://r:8081")
    for code, start in ((409, "Error 409: the schema is incompatible with the earlier versions of subject "
                              "orders-value"),
                        (42201, "Error 42201: the registry could not parse the schema"),
                        (40403, "Error 40403: no schema has the id asked for")):
        text = f"RegistryError: POST /subjects/orders-value/versions: HTTP {str(code)[:3]}, error {code}: x"
        assert hint_for("http_error", text, component="schema_registry").startswith(start)


def test_registry_404_on_its_root_means_a_wrong_url_or_prefix():
    hint = hint_for("http_error", "RegistryError: GET /: HTTP 404: Not Found", "http://r:8081", "schema_registry")
    assert hint == ("HTTP 404 for /: http://r:8081 does not serve the Confluent registry API there: check url and "
                    "path_prefix (Apicurio needs /apis/ccompat/v7).")


def test_registry_hints_are_the_registrys_own():
    message = "RegistryError: GET /subjects/orders-value/versions/latest: HTTP 404, error 40401: Subject not found."
    assert hint_for("http_error", message, "http://r:8081", "flink") == ""
    assert hint_for("http_error", "GET /: HTTP 404: Not Found", "http://r:8081", "remote:r:8081") == ""
