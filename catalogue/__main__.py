"""``python -m catalogue list | show | run | diagnose``: the catalogue from the command line."""

from __future__ import annotations

import argparse
import json
import sys

from . import all_cases, get
from .diagnose import diagnose
from .runner import run
from .taxonomy import TAGS


def _list(tag: str | None, as_json: bool) -> int:
    if tag is not None and tag not in TAGS:
        print(f"unknown tag {tag!r}; tags: {', '.join(TAGS)}", file=sys.stderr)
        return 2
    chosen = [c for c in all_cases() if tag is None or tag in c.tags]
    if as_json:
        rows = [
            {
                "id": c.id,
                "title": c.title,
                "kind": c.kind,
                "tags": list(c.tags),
                "expected": c.module.EXPECTED.__name__,
            }
            for c in chosen
        ]
        print(json.dumps(rows, indent=2))
    else:
        for c in chosen:
            print(f"{c.id:42s} {c.kind:9s} {', '.join(c.tags)}")
    return 0


def _show(case_id: str) -> int:
    case = get(case_id)
    m = case.module
    print(m.__doc__.strip() if m.__doc__ else case.id)
    print(f"\nkind: {case.kind}   tags: {', '.join(case.tags)}")
    print(f"expected: {m.EXPECTED.__name__} matching /{m.MATCH}/")
    if case.has_torch:
        print(f"in PyTorch: {m.TORCH_EXPECTED.__name__} matching /{m.TORCH_MATCH}/")
    for article, claim, reality in getattr(m, "SEED_CLAIMS", ()):
        print(f"\nseed article {article} claimed: {claim}\nrunning it shows: {reality}")
    return 0


def _run(ids: list[str]) -> int:
    chosen = [get(i) for i in ids] if ids else list(all_cases())
    failures = 0
    print(f"{'case':42s} {'broken did':70s} fixed")
    for case in chosen:
        outcome = run(case)
        ok = outcome.broken_ok and outcome.fixed_ok and outcome.torch_ok is not False
        failures += not ok
        broken = outcome.broken if len(outcome.broken) <= 68 else outcome.broken[:65] + "..."
        mark = "" if outcome.broken_ok else "  <- NOT AS CLAIMED"
        print(f"{case.id:42s} {broken:70s} {outcome.fixed}{mark}")
    print(f"\n{len(chosen) - failures} as claimed, {failures} not")
    return 1 if failures else 0


def _fix_of(doc: str) -> str:
    """The first paragraph of a case docstring's Fix section."""
    _, _, fix = doc.partition("Fix:")
    return " ".join(fix.strip().split("\n\n")[0].split())


def _diagnose(message: str | None, top: int, as_json: bool) -> int:
    text = message if message is not None else sys.stdin.read()
    if not text.strip():
        print("diagnose: give a message as an argument or on standard input", file=sys.stderr)
        return 2
    matches = diagnose(text, top=top)
    if as_json:
        rows = [
            {
                "id": m.case.id,
                "title": m.case.title,
                "tags": list(m.case.tags),
                "score": m.score,
                "why": m.why,
                "page": f"catalogue/{m.case.id}/",
            }
            for m in matches
        ]
        print(json.dumps(rows, indent=2))
        return 0
    if not matches:
        print("no catalogue case explains this message; try the symptom in words")
        return 1
    for rank, m in enumerate(matches, 1):
        print(f"{rank}. {m.case.title}  [{m.case.id}; {', '.join(m.case.tags)}]")
        print(f"   why: {m.why}")
        print(f"   fix: {_fix_of(m.case.module.__doc__ or '')}")
        print(f"   docs: http://127.0.0.1:8000/catalogue/{m.case.id}/ (make serve)\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the subcommand."""
    parser = argparse.ArgumentParser(prog="python -m catalogue", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_list = sub.add_parser("list", help="list cases")
    p_list.add_argument("--tag", help="only cases with this taxonomy tag")
    p_list.add_argument("--json", action="store_true", help="print JSON")
    p_show = sub.add_parser("show", help="print one case")
    p_show.add_argument("id")
    p_run = sub.add_parser("run", help="run cases and print what really happened")
    p_run.add_argument("ids", nargs="*")
    p_diag = sub.add_parser("diagnose", help="from an error message or symptom to cases")
    p_diag.add_argument("message", nargs="?", help="the message; read from stdin if absent")
    p_diag.add_argument("--top", type=int, default=3, help="how many cases (default 3)")
    p_diag.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    if args.command == "diagnose":
        return _diagnose(args.message, args.top, args.json)
    if args.command == "list":
        return _list(args.tag, args.json)
    if args.command == "show":
        return _show(args.id)
    return _run(args.ids)


if __name__ == "__main__":
    sys.exit(main())
