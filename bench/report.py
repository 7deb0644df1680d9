"""The comparison table, the issue's targets with PASS/FAIL, and the JSON record of a run."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from loadgen import LoadResult

MIB = 2**20
Case = tuple[int, int]  # (rows per request, concurrency)
Results = dict[str, dict[Case, LoadResult]]  # server name -> case -> figures


@dataclass(frozen=True)
class Verdict:
    name: str
    status: str  # PASS, FAIL, INVALID (a run had errors) or N/A (not measured)
    detail: str

    @property
    def passed(self) -> bool:
        return self.status == "PASS"


def ratio(ours: float, theirs: float) -> float | None:
    return round(ours / theirs, 2) if theirs else None


def _fmt_ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}×"


def _fmt_run(result: LoadResult | None) -> str:
    if result is None:
        return f"{'—':>8} {'—':>8} {'—':>8}"
    return f"{result.rps:8.1f} {result.p50_ms:8.2f} {result.p99_ms:8.2f}"


def _fmt_errors(name: str, result: LoadResult | None) -> str:
    if result is None or not result.errors:
        return ""
    return f"{name}: {result.non_2xx} non-2xx, {result.socket_errors} socket errors of {result.requests}"


def table(results: Results, cases: list[Case]) -> str:
    """One line per case: req/s, p50, p99 of each server, the ratios, and any errors flagged."""
    mlflow, ours = results.get("mlflow", {}), results.get("tcdeploy", {})
    lines = [
        f"{'':14}|{'mlflow models serve':^27}|{'tcdeploy (auth + table on)':^27}|{'tcdeploy / mlflow':^24}|",
        f"{'rows  conc':14}|{'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} |{'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} |"
        f"{'req/s':>7} {'p50':>7} {'p99':>7} | errors",
        "-" * 110,
    ]
    for case in cases:
        theirs, mine = mlflow.get(case), ours.get(case)
        ratios = ("—",) * 3
        if theirs and mine:
            ratios = (
                _fmt_ratio(ratio(mine.rps, theirs.rps)),
                _fmt_ratio(ratio(mine.p50_ms, theirs.p50_ms)),
                _fmt_ratio(ratio(mine.p99_ms, theirs.p99_ms)),
            )
        errors = "; ".join(e for e in (_fmt_errors("mlflow", theirs), _fmt_errors("tcdeploy", mine)) if e)
        flag = "!!" if errors else "  "
        lines.append(
            f"{case[0]:>4} {case[1]:>5}  {flag} |{_fmt_run(theirs)} |{_fmt_run(mine)} |"
            f"{ratios[0]:>7} {ratios[1]:>7} {ratios[2]:>7} | {errors}"
        )
    return "\n".join(lines)


def memory_lines(peaks: dict[str, int]) -> str:
    parts = [f"{name} {peak / MIB:.0f} MiB" for name, peak in peaks.items()]
    line = "peak RSS of the process tree: " + ", ".join(parts)
    if "mlflow" in peaks and "tcdeploy" in peaks:
        line += f"; tcdeploy / mlflow {_fmt_ratio(ratio(peaks['tcdeploy'], peaks['mlflow']))}"
    return line


def verdicts(results: Results, peaks_pss: dict[str, int]) -> list[Verdict]:
    """The targets of issue 4 ("Speed"), as ratios to `mlflow models serve` in the same run.
    Memory is the trees' peak PSS: replicas forked from a zygote share most of their pages, which
    an RSS sum counts once per process (as issue 14 says, PSS, not RSS sums)."""
    return [
        _throughput("1-row, c=32: throughput ≥ 3× mlflow", results, (1, 32), 3.0),
        _latency("1-row, c=32: p99 ≤ mlflow's", results, (1, 32), "p99_ms"),
        _latency("1-row, c=1: p50 ≤ mlflow's", results, (1, 1), "p50_ms"),
        _throughput("100-row, c=8: throughput ≥ 1.5× mlflow", results, (100, 8), 1.5),
        _memory("peak PSS (server + 1 replica) ≤ 1.5× mlflow's", peaks_pss, 1.5),
    ]


def _pair(results: Results, case: Case) -> tuple[LoadResult | None, LoadResult | None]:
    return results.get("mlflow", {}).get(case), results.get("tcdeploy", {}).get(case)


def _unusable(name: str, theirs: LoadResult | None, mine: LoadResult | None) -> Verdict | None:
    if theirs is None or mine is None:
        return Verdict(name, "N/A", "case not measured for both servers")
    if theirs.errors or mine.errors:
        return Verdict(name, "INVALID", "a run had errors (see the table)")
    return None


def _throughput(name: str, results: Results, case: Case, factor: float) -> Verdict:
    theirs, mine = _pair(results, case)
    bad = _unusable(name, theirs, mine)
    if bad:
        return bad
    status = "PASS" if mine.rps >= factor * theirs.rps else "FAIL"
    # Three decimals: a ratio shown as 1.50× must not read as a pass when it is 1.497×.
    return Verdict(name, status, f"{mine.rps / theirs.rps:.3f}× ({mine.rps:.1f} vs {theirs.rps:.1f} req/s)")


def _latency(name: str, results: Results, case: Case, field: str) -> Verdict:
    theirs, mine = _pair(results, case)
    bad = _unusable(name, theirs, mine)
    if bad:
        return bad
    ours_ms, their_ms = getattr(mine, field), getattr(theirs, field)
    status = "PASS" if ours_ms <= their_ms else "FAIL"
    return Verdict(name, status, f"{ours_ms / their_ms:.3f}× ({ours_ms:.2f} vs {their_ms:.2f} ms)")


def _memory(name: str, peaks: dict[str, int], factor: float) -> Verdict:
    if "mlflow" not in peaks or "tcdeploy" not in peaks:
        return Verdict(name, "N/A", "not measured for both servers")
    ours, theirs = peaks["tcdeploy"], peaks["mlflow"]
    status = "PASS" if ours <= factor * theirs else "FAIL"
    return Verdict(name, status, f"{ours / theirs:.3f}× ({ours / MIB:.0f} vs {theirs / MIB:.0f} MiB)")


def verdict_lines(found: list[Verdict]) -> str:
    return "\n".join(f"  {v.status:<7} {v.name:<52} {v.detail}" for v in found)


def write_json(path: Path, record: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, default=str) + "\n")
    return path


def results_record(results: dict[str, dict[Case, object]]) -> dict:
    """Per-case figures keyed `"<rows>rows_c<concurrency>"` so the JSON reads without tuples."""
    return {
        server: {f"{rows}rows_c{conc}": _plain(r) for (rows, conc), r in by_case.items()}
        for server, by_case in results.items()
    }


def _plain(result: object) -> object:
    to_dict = getattr(result, "to_dict", None)
    return to_dict() if to_dict else result


NOISY_SHARE = 0.25  # other processes using more than a quarter of a core make a run suspect


def cpu_table(results: Results, cpu: dict[str, dict[Case, dict]], cases: list[Case]) -> str:
    """CPU milliseconds per request by process role, and how busy the rest of the machine was."""
    lines = [
        "CPU ms per request by process (server = tcdeploy gateway + control plane, or the mlflow CLI "
        "parent; other = the rest of the machine, % of one core):"
    ]
    for server, by_case in cpu.items():
        for case in cases:
            figures, result = by_case.get(case), results.get(server, {}).get(case)
            if not figures or not result or not result.requests:
                continue
            per_request = {
                key[: -len("_cpu_s")]: 1000 * value / result.requests
                for key, value in figures.items()
                if key.endswith("_cpu_s") and key != "other_cpu_s"
            }
            other = figures["other_cpu_s"] / figures["wall_s"] if figures["wall_s"] else 0.0
            noisy = "  (noisy: the machine was busy)" if other > NOISY_SHARE else ""
            shares = "  ".join(f"{role} {ms:.2f}" for role, ms in per_request.items())
            lines.append(f"  {server:<9} rows={case[0]:<4} c={case[1]:<3} {shares}  other {100 * other:.0f}%{noisy}")
    return "\n".join(lines)


# -- the peers (issue 14) -------------------------------------------------------------------------

OURS = "tcdeploy"


def peer_table(results: Results, cases: list[Case], names: list[str]) -> str:
    """One line per case: req/s, p50, p99 of every server, and ours against the best peer and
    against mlflow (req/s ratios: above 1 is better)."""
    shown = [name for name in names if name in results]
    width = 26
    head = f"{'':11}|" + "".join(f"{name:^{width}}|" for name in shown) + " ours/best peer  ours/mlflow"
    sub = f"{'rows conc':11}|" + "".join(f"{'req/s':>8} {'p50':>7} {'p99':>8} |" for _ in shown)
    lines = [head, sub + "  (req/s; p50 and p99 in ms)", "-" * len(head)]
    for case in cases:
        cells = []
        for name in shown:
            run = results[name].get(case)
            flag = "!" if run is not None and run.errors else " "
            cells.append(
                f"{'—':>8} {'—':>7} {'—':>8}{flag}|"
                if run is None
                else f"{run.rps:8.1f} {run.p50_ms:7.2f} {run.p99_ms:8.2f}{flag}|"
            )
        ours, best = results.get(OURS, {}).get(case), _best_peer(results, case, "rps", max)
        mlflow = results.get("mlflow", {}).get(case)
        vs_best = _fmt_ratio(ratio(ours.rps, best[1].rps)) + f" ({best[0]})" if ours and best else "—"
        vs_mlflow = _fmt_ratio(ratio(ours.rps, mlflow.rps)) if ours and mlflow else "—"
        lines.append(f"{case[0]:>4} {case[1]:>5} |" + "".join(cells) + f" {vs_best:<22} {vs_mlflow}")
    lines.append("(! after a figure: that run had errors)")
    return "\n".join(lines)


def _best_peer(results: Results, case: Case, field: str, pick) -> tuple[str, LoadResult] | None:
    runs = [(name, by_case[case]) for name, by_case in results.items() if name != OURS and case in by_case]
    if not runs:
        return None
    return pick(runs, key=lambda item: getattr(item[1], field))


def pss_lines(peaks: dict[str, int], notes: dict[str, dict]) -> str:
    parts = [f"{name} {peak / MIB:.0f} MiB" for name, peak in peaks.items() if peak]
    lines = ["peak PSS of the process tree during the run: " + ", ".join(parts)]
    ours = notes.get(OURS, {})
    if "pss_second_replica_bytes" in ours:
        lines.append(
            f"tcdeploy after the load: one replica {ours['pss_one_replica_bytes'] / MIB:.0f} MiB, two "
            f"{ours['pss_two_replicas_bytes'] / MIB:.0f} MiB: the second adds {ours['pss_second_replica_bytes'] / MIB:.0f} MiB"
        )
    return "\n".join(lines)


def peer_verdicts(
    results: Results, peak_pss: dict[str, int], startup: dict[str, dict], notes: dict[str, dict], cases: list[Case]
) -> list[Verdict]:
    """The targets of issue 14: ahead of every peer, and the memory and readiness bounds."""
    found = [_ahead(results, case) for case in cases]
    found += [
        _vs_mlflow("1-row, c=32: req/s ≥ 10× mlflow's", results, (1, 32), "rps", 10.0, more=True),
        _vs_best("1-row, c=32: req/s ≥ 1.5× the best peer's", results, (1, 32), "rps", 1.5, more=True),
        _vs_best("1-row, c=32: p99 below every peer's", results, (1, 32), "p99_ms", 1.0, more=False),
        _vs_mlflow("1-row, c=1: p50 ≤ 0.7× mlflow's", results, (1, 1), "p50_ms", 0.7, more=False),
        _vs_best("1-row, c=1: p50 below every peer's", results, (1, 1), "p50_ms", 1.0, more=False),
    ]
    ours, theirs = peak_pss.get(OURS), peak_pss.get("mlflow")
    if ours and theirs:
        status = "PASS" if ours <= 0.75 * theirs else "FAIL"
        detail = f"{ours / theirs:.3f}× ({ours / MIB:.0f} vs {theirs / MIB:.0f} MiB)"
        found.append(Verdict("PSS, server + 1 replica ≤ 0.75× mlflow's", status, detail))
    extra = notes.get(OURS, {}).get("pss_second_replica_bytes")
    if extra is not None:
        status = "PASS" if extra <= 100 * MIB else "FAIL"
        found.append(Verdict("PSS of a further replica ≤ 100 MiB", status, f"{extra / MIB:.0f} MiB"))
    timings = startup.get(OURS, {})
    for key, name in (
        ("second_replica_s", "a second replica serving"),
        ("sigkill_to_ready_s", "a killed replica back"),
    ):
        if key in timings:
            status = "PASS" if timings[key] <= 1.0 else "FAIL"
            found.append(Verdict(f"{name} within 1 s", status, f"{timings[key]:.2f} s"))
    # "The first replica of a model no slower than today": today (cold replicas, issue 14's
    # table) launch → first prediction took 0.90× mlflow's.
    firsts = {name: t["launch_to_first_prediction"] for name, t in startup.items() if "launch_to_first_prediction" in t}
    if OURS in firsts and "mlflow" in firsts:
        share = firsts[OURS] / firsts["mlflow"]
        status = "PASS" if share <= 0.90 else "FAIL"
        detail = f"{share:.3f}× ({firsts[OURS]:.2f} vs {firsts['mlflow']:.2f} s; cold replicas: 0.90×)"
        found.append(Verdict("first replica: launch → first prediction ≤ 0.90× mlflow's", status, detail))
    return found


def _usable(name: str, *runs: LoadResult | None) -> Verdict | None:
    if any(run is None for run in runs):
        return Verdict(name, "N/A", "case not measured for every server needed")
    if any(run.errors for run in runs):
        return Verdict(name, "INVALID", "a run had errors (see the table)")
    return None


def _ahead(results: Results, case: Case) -> Verdict:
    name = f"{case[0]} row(s), c={case[1]}: req/s ≥ every peer's"
    ours, best = results.get(OURS, {}).get(case), _best_peer(results, case, "rps", max)
    bad = _usable(name, ours, best and best[1])
    if bad:
        return bad
    status = "PASS" if ours.rps >= best[1].rps else "FAIL"
    return Verdict(name, status, f"{ours.rps / best[1].rps:.3f}× ({ours.rps:.1f} vs {best[0]} {best[1].rps:.1f})")


def _vs_mlflow(name: str, results: Results, case: Case, field: str, factor: float, more: bool) -> Verdict:
    ours, theirs = results.get(OURS, {}).get(case), results.get("mlflow", {}).get(case)
    bad = _usable(name, ours, theirs)
    if bad:
        return bad
    mine, other = getattr(ours, field), getattr(theirs, field)
    status = "PASS" if (mine >= factor * other if more else mine <= factor * other) else "FAIL"
    return Verdict(name, status, f"{mine / other:.3f}× ({mine:.2f} vs {other:.2f})")


def _vs_best(name: str, results: Results, case: Case, field: str, factor: float, more: bool) -> Verdict:
    ours = results.get(OURS, {}).get(case)
    best = _best_peer(results, case, field, max if more else min)
    bad = _usable(name, ours, best and best[1])
    if bad:
        return bad
    mine, other = getattr(ours, field), getattr(best[1], field)
    passed = mine >= factor * other if more else mine < factor * other
    return Verdict(name, "PASS" if passed else "FAIL", f"{mine / other:.3f}× ({mine:.2f} vs {best[0]} {other:.2f})")
