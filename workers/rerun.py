"""The re-run rule: what happens when a source id that already has results is run again.

A source id names one result (``dinotrack:<source-id>:frames``); a second run never splices into
it silently. `dinotrack run` and a queued job on an id whose frames stream exists are refused,
with what was found, unless they ask for one of two things:

* ``fresh`` (``--fresh``, job ``"on_existing": "fresh"``): the source's keys (frames, events,
  state, checkpoint, control) are deleted and the run starts over;
* ``resume`` (``--resume``, ``"on_existing": "resume"``): the run continues from the source's
  checkpoint (frames already published are skipped); without a usable checkpoint it is refused.

Jobs have a record of their own, ``dinotrack:job:<job-id>`` (hash: status, source_id, entry,
error): a job id seen before is a duplicate and refused, and a source queued or running as one job
refuses every other job until it ends. A job taken over from a dead worker (XAUTOCLAIM) is not a
resubmission: it resumes from its checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from pipeline.outputs.checkpoints import checkpoint_key, load_checkpoint
from pipeline.wire import PREFIX, Job, control_key, events_key, frames_key, state_key

ACTIVE = ("queued", "running")
ENDED = ("finished", "failed", "stopped", "refused")


class RerunRefused(ValueError):
    """A run or job refused by the re-run rule; the message says what was found and what to do."""


def job_key(job_id: str) -> str:
    return f"{PREFIX}:job:{job_id}"


def source_keys(source_id: str) -> list[str]:
    """Every key of one source's results (what ``fresh`` deletes)."""
    return [frames_key(source_id), events_key(source_id), state_key(source_id),
            checkpoint_key(source_id), control_key(source_id)]  # fmt: skip


@dataclass
class Existing:
    """What a source id already holds."""

    source_id: str
    frames: int
    last_frame: int | None
    status: str | None
    job_id: str | None

    def describe(self) -> str:
        last = "" if self.last_frame is None else f" (last frame {self.last_frame})"
        state = {None: "state unknown", "running": "running or interrupted"}.get(
            self.status, self.status
        )
        return f"{self.frames} frames published{last}, {state}"


def existing_results(client: redis.Redis, source_id: str) -> Existing | None:
    """What ``source_id`` holds, or None when it has no frames stream."""
    if not client.exists(frames_key(source_id)):
        return None
    last = client.xrevrange(frames_key(source_id), count=1)
    state = {k.decode(): v.decode() for k, v in client.hgetall(state_key(source_id)).items()}
    return Existing(
        source_id,
        frames=int(client.xlen(frames_key(source_id))),
        last_frame=int(last[0][0].decode().split("-")[0]) if last else None,
        status=state.get("status") or None,
        job_id=state.get("job_id") or None,
    )


def usable_checkpoint(client: redis.Redis, source_id: str) -> int | None:
    """Frame index of the source's checkpoint if it can be loaded, else None."""
    try:
        ckpt = load_checkpoint(client, source_id)
    except (ValueError, KeyError, OSError):
        return None
    return None if ckpt is None else ckpt[0]


def decide(client: redis.Redis, source_id: str, on_existing: str | None, *, fresh_hint: str,
           resume_hint: str) -> bool:  # fmt: skip
    """Apply the rule for a new run of ``source_id``; True when it resumes from its checkpoint.

    ``fresh`` deletes the source's keys here. Raises RerunRefused (results and no choice made, or
    ``resume`` without a usable checkpoint).
    """
    found = existing_results(client, source_id)
    if found is None:
        return False
    if on_existing == "fresh":
        client.delete(*source_keys(source_id))
        return False
    if on_existing == "resume":
        at = usable_checkpoint(client, source_id)
        if at is None:
            raise RerunRefused(
                f"source '{source_id}' has no usable checkpoint to resume from "
                f"({found.describe()}) — use {fresh_hint} to start over"
            )
        return True
    after = "" if found.last_frame is None else f" after frame {found.last_frame}"
    raise RerunRefused(
        f"source '{source_id}' already has results: {found.describe()} — use {fresh_hint} to "
        f"delete them and start over, or {resume_hint} to continue{after} from its checkpoint "
        "(or give another source id)"
    )


def check_run(client: redis.Redis, source_id: str, fresh: bool, resume: bool) -> bool:
    """The rule for `dinotrack run`; True when the run resumes."""
    if fresh and resume:
        raise RerunRefused("--fresh and --resume exclude each other — give one")
    found = existing_results(client, source_id)
    if found and found.status in ACTIVE and found.job_id and _job_active(client, found.job_id):
        raise RerunRefused(
            f"source '{source_id}' is {found.status} as job {found.job_id} of a worker — "
            f"stop it first (dinotrack stop {source_id}) or give another --source-id"
        )
    on_existing = "fresh" if fresh else "resume" if resume else None
    resumes = decide(client, source_id, on_existing, fresh_hint="--fresh", resume_hint="--resume")
    if resumes:
        client.hdel(state_key(source_id), "job_id")  # this run is no worker's job
    return resumes


def _job_active(client: redis.Redis, job_id: str) -> bool:
    status = client.hget(job_key(job_id), "status")
    return status is not None and status.decode() in ACTIVE


JOB_HINTS = {"fresh_hint": "submit --fresh (job \"on_existing\": \"fresh\")",
             "resume_hint": "submit --resume (\"on_existing\": \"resume\")"}  # fmt: skip


def check_submit(client: redis.Redis, job: Job) -> None:
    """Refuse at `dinotrack submit` what a worker would refuse (a worker checks again)."""
    if job.job_id and client.exists(job_key(job.job_id)):
        status = (client.hget(job_key(job.job_id), "status") or b"known").decode()
        raise RerunRefused(f"job id '{job.job_id}' is already {status} — give a new job id")
    _check_source_free(client, job)
    found = existing_results(client, job.source_id)
    if found is None or job.on_existing == "fresh":
        return
    if job.on_existing == "resume" and usable_checkpoint(client, job.source_id) is not None:
        return
    decide(client, job.source_id, job.on_existing, **JOB_HINTS)


def _check_source_free(client: redis.Redis, job: Job) -> None:
    state = client.hmget(state_key(job.source_id), "status", "job_id")
    status, owner = (v.decode() if v else None for v in state)
    if status in ACTIVE and owner and owner != job.job_id:
        raise RerunRefused(
            f"source '{job.source_id}' is already {status} as job {owner} — stop it first "
            f"(dinotrack stop {job.source_id}) or give another source id"
        )


def mark_queued(client: redis.Redis, job: Job, entry_id: str) -> None:
    client.hset(job_key(job.job_id), mapping={"status": "queued", "source_id": job.source_id,
                                              "entry": entry_id})  # fmt: skip


@dataclass
class Admission:
    """A worker's decision on a job it took: run it (resuming or not), or skip it."""

    run: bool
    resume: bool = False
    status: str = "running"  # when not run: "stopped" or an ended status of a taken-over job


def admit(client: redis.Redis, job: Job, entry_id: str, takeover: bool) -> Admission:
    """Apply the rule to a job a worker took from ``dinotrack:jobs``.

    Raises RerunRefused for a duplicate job id, a source busy with another job, or results the
    job did not say what to do with. Claims the source (state ``running``, ``job_id``) atomically.
    """
    job.job_id = job.job_id or entry_id
    key = job_key(job.job_id)
    client.hsetnx(key, "entry", entry_id)
    record = {k.decode(): v.decode() for k, v in client.hgetall(key).items()}
    if takeover:
        if record.get("status") in ENDED:  # its worker died after the end, before the ack
            return Admission(run=False, status=record["status"])
        client.hset(key, mapping={"status": "running", "source_id": job.source_id})
        client.hset(state_key(job.source_id), "job_id", job.job_id)
        return Admission(run=True, resume=True)
    if record.get("entry") != entry_id:
        raise RerunRefused(
            f"duplicate job id '{job.job_id}': it is already {record.get('status', 'queued')} "
            f"(entry {record.get('entry')}) — give each job its own id"
        )
    if record.get("status") == "stopped":  # stopped while queued
        return Admission(run=False, status="stopped")
    with client.pipeline() as pipe:
        while True:
            try:
                pipe.watch(state_key(job.source_id), frames_key(job.source_id))
                _check_source_free(pipe, job)
                resume = decide(pipe, job.source_id, job.on_existing, **JOB_HINTS)
                pipe.multi()
                pipe.hset(state_key(job.source_id), mapping={"status": "running",
                                                              "job_id": job.job_id})  # fmt: skip
                pipe.hset(key, mapping={"status": "running", "source_id": job.source_id})
                pipe.execute()
                return Admission(run=True, resume=resume)
            except redis.WatchError:
                continue


def refuse(client: redis.Redis, job: Job, entry_id: str, reason: str) -> None:
    """Record a refused job (its own record; a duplicate's record belongs to the first)."""
    job.job_id = job.job_id or entry_id
    key = job_key(job.job_id)
    if (client.hget(key, "entry") or b"").decode() == entry_id:
        client.hset(key, mapping={"status": "refused", "error": reason,
                                  "source_id": job.source_id})  # fmt: skip


def ended(client: redis.Redis, job: Job, status: str, error: str | None) -> None:
    client.hset(job_key(job.job_id), mapping={"status": status, "error": error or ""})
