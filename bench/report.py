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


def verdicts(results: Results, peaks: dict[str, int]) -> list[Verdict]:
    """The targets of issue 4 ("Speed"), as ratios to `mlflow models serve` in the same run."""
    return [
        _throughput("1-row, c=32: throughput ≥ 3× mlflow", results, (1, 32), 3.0),
        _latency("1-row, c=32: p99 ≤ mlflow's", results, (1, 32), "p99_ms"),
        _latency("1-row, c=1: p50 ≤ mlflow's", results, (1, 1), "p50_ms"),
        _throughput("100-row, c=8: throughput ≥ 1.5× mlflow", results, (100, 8), 1.5),
        _memory("peak memory (server + 1 replica) ≤ 1.5× mlflow's", peaks, 1.5),
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
