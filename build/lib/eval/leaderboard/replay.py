"""``validate``: replays a results.csv and recomputes every derived column, so a published file can be trusted."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from envs.benchmarks import Suite
from eval.evaluate import evaluate
from eval.leaderboard.entries import registry
from eval.provenance import package_versions
from eval.rows import DERIVED, REFERENCE_ROWS, REPLAYED_RAW, RowError, derive, parse_row, present, reference_row


def validate(results_csv: Path, suite: Suite) -> list[str]:
    """Replays every row of ``results_csv``; returns the problems found (empty = every row confirmed).

    A file with no rows, a row of an unknown agent or instance, a duplicated row, an agent whose rows do not cover
    every instance of a split it appears in, a raw count that does not replay, and a derived column that differs
    from its recomputation are all problems. The reference runs (LRU, the offline references,
    the lower bound) are recomputed too, never read from the cache.
    """
    reg = registry()
    problems: list[str] = []
    try:
        with results_csv.open(newline="") as fh:
            raw_rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        return [f"{results_csv}: not a readable CSV ({exc})"]
    if not raw_rows:
        return [f"{results_csv}: no rows"]
    insts: dict[tuple, object] = {}
    seen: dict[tuple, str] = {}
    for n, raw in enumerate(raw_rows, 2):
        where = f"{results_csv.name}:{n}"
        try:
            row = parse_row(raw, where)
        except RowError as exc:
            problems.append(str(exc))
            continue
        if row["agent"] not in reg and row["agent"] not in REFERENCE_ROWS:
            problems.append(f"{where}: unknown agent {row['agent']!r}")
            continue
        ident = (row["agent"], row["split"], row["task"], row["seed"])
        if ident in seen:
            problems.append(f"{where}: duplicate of {seen[ident]} ({row['agent']} {row['task']} seed {row['seed']})")
            continue
        seen[ident] = where
        key = (row["split"], row["family"], row["seed"], row["headroom"])
        if key not in insts:
            if row["split"] not in suite.seeds:
                problems.append(f"{where}: split {row['split']!r} is not in {suite.name}")
                continue
            matches = [i for i in suite.instances(row["split"]) if (i.split, i.family.name, i.seed, i.headroom) == key]
            insts[key] = (matches[0], matches[0].fresh_references()) if matches else None
        if insts[key] is None:
            problems.append(f"{where}: {row['task']} seed {row['seed']} is not an instance of {suite.name}")
            continue
        inst, refs = insts[key]
        if inst.prepared.trace.content_hash != row["trace_hash"]:
            problems.append(f"{where}: trace hash differs (generator changed?)")
            continue
        if row["capacity_bytes"] != inst.capacity:
            problems.append(f"{where}: capacity_bytes {row['capacity_bytes']} != {inst.capacity}")
            continue
        if row["agent"] in REFERENCE_ROWS:
            fresh = reference_row(inst, row["agent"], package_versions(), refs)
        else:
            fresh = evaluate(reg.make(row["agent"]), instances=[inst], name=row["agent"]).rows[0]
        for col in REPLAYED_RAW:
            if not present(row, col):
                problems.append(f"{where}: missing raw column {col} (written before it existed: regenerate the file)")
            elif int(row[col]) != int(fresh[col]):
                problems.append(f"{where} {row['agent']}: {col} {row[col]} != replayed {fresh[col]}")
        recomputed = derive(row, inst, refs)
        for col in DERIVED:
            if col in ("decisions_per_s",):
                continue  # a timing, not a count
            if col not in raw or raw[col] in (None, ""):
                problems.append(f"{where}: missing derived column {col}")
                continue
            a, b = float(raw[col]), float(recomputed[col])
            if not (math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) or (math.isnan(a) and math.isnan(b)) or a == b):
                problems.append(f"{where} {row['agent']}: {col} {raw[col]} != recomputed {recomputed[col]!r}")
    problems += _coverage(seen, suite, results_csv.name)
    return problems


def _coverage(seen: dict[tuple, str], suite: Suite, name: str) -> list[str]:
    """One problem per (agent, split) of the file whose rows leave out instances of that split."""
    out = []
    for agent, split in sorted({(a, s) for a, s, _, _ in seen if s in suite.seeds}):
        want = {(i.task, i.seed) for i in suite.instances(split)}
        have = {(t, sd) for a, s, t, sd in seen if (a, s) == (agent, split)}
        if want - have:
            out.append(f"{name}: {agent} covers {len(have & want)} of the {len(want)} instances of {split}")
    return out
