"""Plain functions of sync_tasks/orders.py (no broker, no HTTP)."""

from __future__ import annotations

from typing import Any

from sync_tasks.orders import push_calls


def _order(i: int, items: int, contact: str | None = "c", email: str | None = None) -> dict[str, Any]:
    return {"id": f"o{i}", "contact": contact, "email": email,
            "line_items": [[f"order:o{i}:l{j}", {}] for j in range(items)]}


def test_push_calls_counts_full_batches_of_guests_orders_and_line_items() -> None:
    orders = [_order(i, 2) for i in range(250)] + [_order(1000 + i, 1, None, f"g{i % 30}@x") for i in range(40)]
    plan = {"orders": orders, "done": []}
    # 30 guest e-mails: 1 call; 290 orders: 3; 540 line items: 6
    assert push_calls(plan) == 1 + 3 + 6


def test_push_calls_leaves_out_steps_done_and_keys_written() -> None:
    orders = [_order(i, 3, None, f"g{i}@x") for i in range(150)]
    plan: dict[str, Any] = {"orders": orders, "done": ["guests"],
                            "progress": {"orders": {f"o{i}": ["1", True] for i in range(100)}}}
    assert push_calls(plan) == 1 + 5  # 50 orders left; 450 line items
    plan["done"] += ["orders", "line_items"]
    assert push_calls(plan) == 0
