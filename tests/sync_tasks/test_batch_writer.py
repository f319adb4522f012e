from __future__ import annotations

from typing import Any

import pytest

from sync_tasks.batch_writer import write
from sync_tasks.errors import ConflictError, ErrorDetail, PermanentError, RetryableError
from sync_tasks.hubspot_client import BatchResult


def _inputs(n: int) -> list[dict[str, Any]]:
    return [{"id": f"k{i}", "properties": {}, "objectWriteTraceId": f"t{i}"} for i in range(n)]


def _trace(result: dict[str, Any]) -> str:
    return "t" + result["id"][1:]


def test_whole_batch_rejection_is_bisected_to_the_bad_input() -> None:
    calls: list[int] = []

    def call(xs: list[dict[str, Any]]) -> BatchResult:
        calls.append(len(xs))
        if any(x["id"] == "k5" for x in xs):
            raise PermanentError("bad", ErrorDetail(400, "VALIDATION_ERROR", "bad email"))
        return BatchResult(results=[{"id": x["id"]} for x in xs])

    out = write(call, _inputs(8), _trace)
    assert set(out.results) == {f"t{i}" for i in range(8)} - {"t5"}
    assert list(out.failed) == ["t5"] and out.failed["t5"].category == "VALIDATION_ERROR"
    assert len(calls) <= 1 + 2 * 3


def test_207_errors_are_read_per_input() -> None:
    def call(xs: list[dict[str, Any]]) -> BatchResult:
        return BatchResult(status=207, results=[{"id": "k0"}], errors=[
            {"category": "CONFLICT", "message": "Contact already exists. Existing ID: 55",
             "context": {"objectWriteTraceId": ["t1"]}},
            {"category": "VALIDATION_ERROR", "message": "bad", "context": {"objectWriteTraceId": ["t2"]}},
            {"category": "LOCKED", "message": "locked", "context": {"objectWriteTraceId": ["t3"]}},
        ])

    out = write(call, _inputs(4), _trace)
    assert list(out.results) == ["t0"] and out.conflicts == {"t1": "55"}
    assert list(out.failed) == ["t2"] and out.retry == ["t3"]


def test_single_conflict_resolves_to_existing_id() -> None:
    def call(xs: list[dict[str, Any]]) -> BatchResult:
        raise ConflictError("x", ErrorDetail(409, "CONFLICT", "Contact already exists. Existing ID: 9"))

    assert write(call, _inputs(1), _trace).conflicts == {"t0": "9"}


def test_transient_failure_keeps_everything_for_retry() -> None:
    def call(xs: list[dict[str, Any]]) -> BatchResult:
        raise RetryableError("503")

    out = write(call, _inputs(3), _trace)
    assert out.retry == ["t0", "t1", "t2"] and not out.results


def test_complete_without_results_is_never_counted_as_written() -> None:
    out = write(lambda xs: BatchResult(results=[]), _inputs(2), _trace)
    assert out.retry == ["t0", "t1"] and out.retry_error is not None


@pytest.mark.parametrize("n", [1, 2, 100])
def test_every_input_lands_somewhere(n: int) -> None:
    out = write(lambda xs: BatchResult(results=[{"id": x["id"]} for x in xs]), _inputs(n), _trace)
    assert len(out.results) == n


def test_mixed_207_writes_the_good_resolves_conflicts_and_keeps_retryables() -> None:
    def call(xs: list[dict[str, Any]]) -> BatchResult:
        errors = [
            {"category": "INVALID_EMAIL", "message": "Email address x is invalid",
             "context": {"objectWriteTraceId": ["t1"]}},
            {"category": "CONFLICT", "message": "Contact already exists. Existing ID: 999",
             "context": {"objectWriteTraceId": ["t2"]}},
            {"category": "LOCKED", "message": "locked", "context": {"objectWriteTraceId": ["t3"]}},
        ]
        return BatchResult(results=[{"id": x["id"]} for x in xs if x["id"] not in ("k1", "k2", "k3")],
                           errors=errors, status=207)

    out = write(call, _inputs(6), _trace)
    assert set(out.results) == {"t0", "t4", "t5"}
    assert set(out.failed) == {"t1"} and out.failed["t1"].category == "INVALID_EMAIL"
    assert out.conflicts == {"t2": "999"}
    assert out.retry == ["t3"] and out.calls == 1


def test_two_bad_inputs_in_a_rejected_batch_fail_alone() -> None:
    bad = {"k2", "k9"}

    def call(xs: list[dict[str, Any]]) -> BatchResult:
        if bad & {x["id"] for x in xs}:
            raise PermanentError("bad", ErrorDetail(400, "VALIDATION_ERROR", "bad"))
        return BatchResult(results=[{"id": x["id"]} for x in xs])

    out = write(call, _inputs(16), _trace)
    assert set(out.failed) == {"t2", "t9"}
    assert len(out.results) == 14 and not out.retry


def test_echoed_trace_id_maps_a_result_the_property_cannot() -> None:
    def call(xs: list[dict[str, Any]]) -> BatchResult:
        return BatchResult(results=[{"id": "999", "objectWriteTraceId": x["objectWriteTraceId"]} for x in xs])

    out = write(call, _inputs(3), lambda result: None)
    assert set(out.results) == {"t0", "t1", "t2"} and not out.retry
