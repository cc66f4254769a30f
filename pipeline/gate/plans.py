"""A Render plan as the gate's reports name it (gate.plans in params.yaml)."""

from typing import Any


def plan_row(name: str, plan: dict) -> dict[str, Any]:
    return {
        "name": name,
        "memory_mb": plan["memory_mb"],
        "cpu_share": plan["cpu_share"],
        "price_usd_month": plan["price_usd_month"],
    }
