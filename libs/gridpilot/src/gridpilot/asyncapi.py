"""Generate the AsyncAPI 3.0 document of every message on the bus (``gridpilot docs asyncapi``).

The document is built from the pydantic models in :mod:`gridpilot.contracts`, so it cannot
drift from the code; a test fails when the checked-in ``docs/asyncapi.json`` is out of date.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pydantic.json_schema import models_json_schema

from . import __version__
from .contracts import (
    EVENT_TYPES,
    JOB_TYPES,
    SCOPE_VERBS,
    Message,
    ScopeCommand,
    ScopeReply,
    subjects,
)
from .contracts.scope import LEASE_VERB, SCOPE_RESULTS, LeaseInfo, LeaseRequest

__all__ = ["add_args", "build_asyncapi", "main"]

_REF = "#/components/schemas/{model}"


def _camel(address: str) -> str:
    parts = address.replace("{", "").replace("}", "").replace("-", ".").split(".")
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])


def build_asyncapi() -> dict[str, Any]:
    """The AsyncAPI document as a dict (deterministic: sorted, no timestamps)."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    models: dict[str, type[Message]] = {}

    def add(address: str, model: type[Message], action: str, description: str,
            parameters: dict[str, Any] | None = None, reply: type[Message] | None = None) -> None:
        cid = _camel(address)
        models[model.__name__] = model
        channel: dict[str, Any] = {
            "address": address, "description": description,
            "messages": {model.__name__: {"$ref": f"#/components/messages/{model.__name__}"}},
        }
        if parameters:
            channel["parameters"] = parameters
        channels[cid] = channel
        op: dict[str, Any] = {"action": action, "channel": {"$ref": f"#/channels/{cid}"},
                              "summary": model.summary or model.__name__}
        if reply is not None:
            models[reply.__name__] = reply
            op["reply"] = {"messages": [{"$ref": f"#/components/messages/{reply.__name__}"}]}
        operations[f"{action}{cid[:1].upper()}{cid[1:]}"] = op

    for kind, (job, result) in sorted(JOB_TYPES.items()):
        add(subjects.job_subject(kind), job, "receive",
            f"Jobs of kind {kind} (JetStream stream {subjects.JOBS_STREAM}, work queue; "
            "Nats-Msg-Id = job_id).")
        add(subjects.result_subject(kind), result, "send",
            f"Results of {kind} jobs (stream {subjects.EVENTS_STREAM}).")
    for subject, model in sorted(EVENT_TYPES.items()):
        add(subject, model, "send", f"Event (stream {subjects.EVENTS_STREAM}).")
    add("scope.{scope_id}.{verb}", ScopeCommand, "receive",
        "Commands to one microscope, request/reply over core NATS. Verbs: "
        + ", ".join(sorted(SCOPE_VERBS)) + ".",
        parameters={"scope_id": {"description": "the microscope's id"},
                    "verb": {"enum": sorted(SCOPE_VERBS)}},
        reply=ScopeReply)
    add(f"scope.{{scope_id}}.{LEASE_VERB}", LeaseRequest, "receive",
        "Take, renew or release a microscope's exclusive lease (request/reply).",
        parameters={"scope_id": {"description": "the microscope's id"}}, reply=LeaseInfo)
    # Per-verb parameter and result models: ScopeCommand.params and ScopeReply.result hold them.
    for verb, params in sorted(SCOPE_VERBS.items()):
        models[params.__name__] = params
        models[SCOPE_RESULTS[verb].__name__] = SCOPE_RESULTS[verb]

    _, schema = models_json_schema(
        [(m, "serialization") for _, m in sorted(models.items())], ref_template=_REF
    )
    messages = {
        name: {"name": name, "title": name, "summary": m.summary or name,
               "contentType": "application/json",
               "payload": {"$ref": _REF.format(model=name)}}
        for name, m in sorted(models.items())
    }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "gridpilot bus",
            "version": __version__,
            "description": "Every message on gridpilot's NATS bus. Generated from "
                           "gridpilot.contracts by `gridpilot docs asyncapi`; do not edit.",
        },
        "defaultContentType": "application/json",
        "channels": dict(sorted(channels.items())),
        "operations": dict(sorted(operations.items())),
        "components": {"messages": messages,
                       "schemas": dict(sorted(schema.get("$defs", {}).items()))},
    }


def render() -> str:
    return json.dumps(build_asyncapi(), indent=2, sort_keys=False) + "\n"


def add_args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="docs_command", required=True, metavar="DOC")
    a = sub.add_parser("asyncapi", help="write the AsyncAPI document of the bus")
    a.add_argument("--out", type=Path, default=None, help="file to write (default: stdout)")
    a.add_argument("--check", action="store_true",
                   help="exit 1 if --out differs from what would be generated")


def main(args: argparse.Namespace) -> int:
    text = render()
    if args.out is None:
        sys.stdout.write(text)
        return 0
    if args.check:
        current = args.out.read_text() if args.out.exists() else ""
        if current != text:
            print(f"{args.out} is out of date: run `gridpilot docs asyncapi --out {args.out}`",
                  file=sys.stderr)
            return 1
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"wrote {args.out}")
    return 0
