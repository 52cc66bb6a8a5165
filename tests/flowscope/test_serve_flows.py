"""`flowscope serve --flows flows.yaml`: the server's API names flows by the file."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from flowscope.analyzer.flows import auto_flow_id
from flowscope.server import ServeConfig
from flowscope.testing.otlp import BASE_TIME_NS, realistic_request
from flowscope.testing.server import server_in_process

FLOWS = """\
flows:
  - name: Order Placement
    id: order-placement
    match:
      service: client-gateway
      route: "/orders*"
"""


def test_server_names_flows_from_its_flows_file(tmp_path: Path) -> None:
    flows = tmp_path / "flows.yaml"
    flows.write_text(FLOWS)
    with server_in_process(tmp_path / "spans.duckdb", flows=str(flows)) as (_server, endpoints):
        body = realistic_request(10, seed=1).SerializeToString()
        sent = httpx.post(
            f"{endpoints.http}/v1/traces",
            content=body,
            headers={"Content-Type": "application/x-protobuf"},
        )
        assert sent.status_code == 200
        since = "2025-12-31T00:00:00Z"
        assert BASE_TIME_NS > 1_767_139_200 * 10**9  # the spans lie after `since`
        answer = httpx.get(f"{endpoints.ui}/api/flows", params={"since": since})
        assert answer.status_code == 200, answer.text
        named = {f["id"]: f for f in answer.json()["flows"]}
        assert named["order-placement"]["name"] == "Order Placement"
        # realistic_request cycles five routes; /orders and /orders/{id} are 4 of 10 traces.
        assert named["order-placement"]["traces"] == 4
        # The automatic ids of the roots the rule took point to the rule's flow.
        roots = httpx.post(
            f"{endpoints.ui}/api/sql",
            json={
                "sql": "SELECT DISTINCT ServiceName, SpanName FROM otel_traces WHERE "
                "ParentSpanId = '' AND SpanAttributes['http.route'] LIKE '/orders%'"
            },
        ).json()["rows"]
        claimed = [
            httpx.get(
                f"{endpoints.ui}/api/flows/{auto_flow_id(service, name)}", params={"since": since}
            ).json()
            for service, name in roots
        ]
        assert claimed and all(c["flow"]["traces"] == 0 for c in claimed)
        claims = [claim for c in claimed for claim in c["claimed_by"]]
        assert {claim["flow"] for claim in claims} == {"order-placement"}
        assert sum(claim["traces"] for claim in claims) == 4


def test_bad_flows_file_is_refused_at_start_naming_it(tmp_path: Path) -> None:
    flows = tmp_path / "flows.yaml"
    flows.write_text("flows:\n  - id: no-name\n    match: {service: x}\n")
    config = ServeConfig(db=str(tmp_path / "x.duckdb"), flows=str(flows))
    with pytest.raises(ValueError, match="flows.yaml") as refused:
        config.validate()
    assert str(refused.value).count(str(flows)) == 1  # the file is named once
