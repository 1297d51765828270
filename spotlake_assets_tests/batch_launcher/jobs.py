"""Tiny jobs for the launcher tests: two ops whose op_tags ask for different Batch resources."""

import dagster as dg


@dg.op(tags={"batch/vcpu": "0.5", "batch/memory": "1024"})
def light() -> int:
    return 1


@dg.op(tags={"batch/vcpu": "4", "batch/memory": "8192"})
def heavy(value: int) -> int:
    return value + 1


@dg.op
def untagged() -> None:
    return None


@dg.job
def tagged_job() -> None:
    heavy(light())


@dg.job
def plain_job() -> None:
    untagged()
