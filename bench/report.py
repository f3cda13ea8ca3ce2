"""results.json → RESULTS.md and the SVG plots (also: `python -m bench.report` re-renders them
from a stored results.json)."""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent

GOALS = [
    # (id, text, computed by)
    ("filters-vs-empty", "each breakwater filter ≥ 0.97× the throughput of an empty Rust proxy-wasm filter"),
    ("chain-vs-bare", "the three-filter chain ≥ 0.85× bare Envoy's throughput"),
    ("chain-vs-lua", "the chain ≥ 1.1× the same chain in Lua"),
    ("open-vs-direct", "an open breaker's p99 ≤ 1.2× Envoy's direct_response p99"),
    ("outage-p99", "during a hanging-upstream outage, client p99 with the breaker ≥ 200× better than without"),
]


def med(values: list[float]) -> float:
    return statistics.median(values)


def ratios(results: dict, a: str, b: str, metric) -> list[float]:
    """metric(a) / metric(b) within each round."""
    va, vb = results["variants"][a], results["variants"][b]
    return [x / y for x, y in zip(metric(va), metric(vb)) if y]


def tput(v: dict) -> list[float]:
    return v["throughput_rps"]


def p99(v: dict) -> list[float]:
    return [l["p99_ms"] for l in v["latency"]]


def span(values: list[float], fmt: str = "{:.2f}") -> str:
    if len(values) == 1:
        return fmt.format(values[0])
    return f"{fmt.format(med(values))} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def goals(results: dict) -> list[dict]:
    out = []
    filters = ["breaker", "fallback", "log", "log-pii"]
    per_filter = {f: ratios(results, f, "empty-wasm", tput) for f in filters}
    worst = min(med(r) for r in per_filter.values())
    out.append({"goal": GOALS[0][1], "measured": ", ".join(f"{f} {med(r):.3f}×" for f, r in per_filter.items()),
                "met": worst >= 0.97})  # fmt: skip
    chain_bare = ratios(results, "chain", "bare", tput)
    out.append({"goal": GOALS[1][1], "measured": f"{span(chain_bare, '{:.3f}')}×", "met": med(chain_bare) >= 0.85})
    chain_lua = ratios(results, "chain", "lua-chain", tput)
    out.append({"goal": GOALS[2][1], "measured": f"{span(chain_lua, '{:.3f}')}×", "met": med(chain_lua) >= 1.1})
    open_direct = ratios(results, "breaker-open", "direct-response", p99)
    out.append({"goal": GOALS[3][1], "measured": f"{span(open_direct, '{:.3f}')}×", "met": med(open_direct) <= 1.2})
    scenarios = results["outage"]["scenarios"]
    without, with_ = scenarios["no breaker"]["p99_ms"], scenarios["breaker"]["p99_ms"]
    ratio = without / with_ if with_ else float("inf")
    after_open = scenarios["breaker"].get("p99_after_open_ms")
    note = f"; {without / after_open:.0f}× once open" if after_open else ""
    out.append({"goal": GOALS[4][1], "measured": f"{ratio:.1f}× (p99 {without:.0f} ms → {with_:.1f} ms{note})",
                "met": ratio >= 200})  # fmt: skip
    return out


# Issue 15's goals: (figure, a, b, metric, goal). Throughput ratios a/b (for p99, the p99 ratio);
# the CPU column gives the same ratio from Envoy's CPU per request (b's over a's).
FLOOR_GOALS = [
    ("breaker / its floor", "breaker", "floor-breaker", "tput", 0.95),
    ("breaker / empty filter", "breaker", "empty-wasm", "tput", 0.90),
    ("fallback / empty filter", "fallback", "empty-wasm", "tput", 0.97),
    ("log enrichment / its floor", "log", "floor-log", "tput", 0.95),
    ("log enrichment / empty filter", "log", "empty-wasm", "tput", 0.80),
    ("full chain / bare Envoy", "chain", "bare", "tput", 0.55),
    ("full chain / the same chain in Lua", "chain", "lua-chain", "tput", 1.5),
    ("open breaker p99 / Envoy `direct_response` p99", "breaker-open", "direct-response", "p99", 1.10),
    # Both modes of log enrichment are measured; these are the lean one (`envoy_fields: "access_log"`).
    ("lean log enrichment / its floor", "log-lean", "floor-log-lean", "tput", 0.95),
    ("lean log enrichment / empty filter", "log-lean", "empty-wasm", "tput", 0.80),
    ("full chain, lean log / bare Envoy", "chain-lean", "bare", "tput", 0.55),
    ("full chain, lean log / the same chain in Lua", "chain-lean", "lua-chain", "tput", 1.5),
]
# Context: what the host calls alone cost.
FLOOR_CONTEXT = [("floor-breaker", "empty-wasm"), ("floor-fallback", "empty-wasm"), ("floor-log", "empty-wasm"),
                 ("fallback", "floor-fallback"),
                 ("floor-chain", "bare"), ("chain", "floor-chain"), ("floor-log-lean", "empty-wasm"),
                 ("floor-chain-lean", "bare"), ("chain-lean", "floor-chain-lean"), ("log-lean", "log")]  # fmt: skip


def cpu_ratios(results: dict, a: str, b: str) -> list[float]:
    """b's Envoy CPU per request over a's, within each round: a throughput-like ratio."""
    va, vb = results["variants"][a]["envoy_cpu_us_per_request"], results["variants"][b]["envoy_cpu_us_per_request"]
    return [y / x for x, y in zip(va, vb) if x]


def floor_section(results: dict) -> list[str]:
    variants = results["variants"]
    if "floor-breaker" not in variants:  # results.json from before the floors has none
        return []
    lines = [
        "",
        "## Against the floor (issue 15's goals)",
        "",
        "A floor is bench/floor-filter making exactly the host calls the filter makes on the measured path (see *Host "
        "calls per request*), and nothing else. *Met* is judged on the throughput ratio; the CPU ratio (the other "
        "filter's Envoy CPU per request over this one's) is the second method.",
        "",
        "| figure | throughput ratio | CPU ratio | goal | met |",
        "|---|---|---|---|---|",
    ]
    for figure, a, b, metric, goal in FLOOR_GOALS:
        if a not in variants or b not in variants:
            continue
        if metric == "p99":
            r = ratios(results, a, b, p99)
            lines.append(f"| {figure} | {span(r, '{:.3f}')} (p99) | — | ≤ {goal} | {'yes' if med(r) <= goal else '**no**'} |")
            continue
        r = ratios(results, a, b, tput)
        lines.append(f"| {figure} | {span(r, '{:.3f}')} | {span(cpu_ratios(results, a, b), '{:.3f}')} | ≥ {goal} "
                     f"| {'yes' if med(r) >= goal else '**no**'} |")  # fmt: skip
    lines += ["", "| context | throughput ratio | CPU ratio |", "|---|---|---|"]
    for a, b in FLOOR_CONTEXT:
        if a in variants and b in variants:
            lines.append(f"| {a} / {b} | {span(ratios(results, a, b, tput), '{:.3f}')} "
                         f"| {span(cpu_ratios(results, a, b), '{:.3f}')} |")  # fmt: skip
    return lines


def host_calls_section(results: dict) -> list[str]:
    rows = results.get("host_calls")
    if not rows:
        return []
    from bench.host_calls import table
    from bench.variants import FLOORS, floor_call_count

    lines = ["", "## Host calls per request", "",
             "Counted by the filters themselves (bench/host_calls.py: the modules built with breakwater-envoy's "
             "`count-host-calls` feature), sequential requests on one worker.", "", *table(rows), ""]  # fmt: skip
    measured = {(r["filter"], r["path"]): r["host_calls"] for r in rows}
    for variant, (_, filter_name, path, calls) in FLOORS.items():
        made = sum(floor_call_count(c) for c in calls)
        counted = measured.get((filter_name, path))
        same = counted is not None and abs(counted - made) < 0.5
        lines.append(f"- *{variant}* makes {made} host calls per request; {filter_name} ({path}) made "
                     f"{fmt_opt(counted, '{:g}')}{'' if same else ' — **the floor does not match the filter**'}.")
    return lines


def markdown(results: dict) -> str:
    m, method, variants = results["machine"], results["method"], results["variants"]
    lines = [
        "# breakwater benchmark results",
        "",
        f"{m['date']}, commit `{m['commit']}`, {'QUICK run' if m['quick'] else 'full run'} in {results['duration_seconds']} s. "
        f"{m['cpus']} CPUs ({m['cpu_model']}), Linux {m['kernel']}, Envoy {m['envoy']}.",
        f"Envoy under test: `--concurrency 1` on CPU {method['envoy_cpu']}; upstream (Envoy direct_response), wrk and oha on "
        f"CPU {method['load_cpu']}. {method['rounds']} interleaved round(s); throughput: wrk, {method['connections']} "
        f"connections, {method['throughput_seconds']} s; latency: oha at a fixed {method['latency_rate_rps']} requests/s "
        f"(half the slowest variant's maximum), {method['latency_seconds']} s, corrected for coordinated omission. "
        "Medians, with the range over rounds in parentheses; ratios are taken within a round. See bench/README.md.",
        "",
        "## Goals",
        "",
        "| goal | measured | met |",
        "|---|---|---|",
        *[f"| {g['goal']} | {g['measured']} | {'yes' if g['met'] else '**no**'} |" for g in goals(results)],
        "",
        "## Every variant",
        "",
        "| variant | what | requests/s | × bare | × empty wasm | Envoy CPU µs/request | p50 ms | p99 ms | RSS MiB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, v in variants.items():
        lines.append(
            f"| {name} | {v['description']} | {span(tput(v), '{:.0f}')} | {span(ratios(results, name, 'bare', tput), '{:.3f}')} "
            f"| {span(ratios(results, name, 'empty-wasm', tput), '{:.3f}')} | {span(v['envoy_cpu_us_per_request'], '{:.1f}')} "
            f"| {span([l['p50_ms'] for l in v['latency']], '{:.3f}')} | {span(p99(v), '{:.3f}')} | {v['rss_bytes'] / 2**20:.0f} |"
        )
    pairs = [("breaker", "lua-breaker"), ("fallback", "lua-fallback"), ("log", "lua-log"), ("chain", "lua-chain"),
             ("log", "json-access-log"), ("breaker-open", "direct-response"), ("fallback-static", "custom-response")]  # fmt: skip
    lines += [
        "",
        "## breakwater against its peers",
        "",
        "| breakwater | peer | throughput × peer | CPU per request − peer (µs) | p99 × peer |",
        "|---|---|---|---|---|",
    ]
    for a, b in pairs:
        cpu = [x - y for x, y in zip(variants[a]["envoy_cpu_us_per_request"], variants[b]["envoy_cpu_us_per_request"])]
        lines.append(f"| {a} | {b} | {span(ratios(results, a, b, tput), '{:.3f}')} | {span(cpu, '{:+.1f}')} "
                     f"| {span(ratios(results, a, b, p99), '{:.3f}')} |")  # fmt: skip
    lines += floor_section(results)
    lines += host_calls_section(results)
    lines += outage_section(results)
    if "outage_short" in results:  # results.json from before the short scenario ran in `make bench` has none
        lines += outage_section(results, "outage_short")
    if "grpc" in results:  # results.json from before the gRPC comparison has none
        lines += grpc_section(results["grpc"], m)
    lines += ["", "## Modules", "", "| module | bytes |", "|---|---|"]
    lines += [f"| {name} | {size} |" for name, size in results["module_bytes"].items()]
    instructions = results.get("instructions", {})
    if "scenarios" in instructions:
        lines += ["", "## Instructions per request (callgrind, native)", "", "| scenario | instructions | stored | change |", "|---|---|---|---|"]
        for name, s in instructions["scenarios"].items():
            lines.append(f"| {name} | {s['measured']:.0f} | {fmt_opt(s.get('stored'), '{:.0f}')} | {fmt_opt(s.get('change'), '{:+.2%}')} |")
    lines += ["", "![throughput](plots/throughput.svg)", "", "![latency](plots/latency.svg)", "", "![outage](plots/outage.svg)", ""]
    return "\n".join(lines)


RELEASE_VARIANT = "breaker + fallback + release"
# The `istio/base` breaker's hang_after, for results.json from before the run recorded it.
HANG_AFTER_MS = 300


def outage_section(results: dict, key: str = "outage") -> list[str]:
    """The table of one outage run: `outage` (the long scenario), or `outage_short` (the issue's
    short one: no healthy phase, no heal; with the goals line). results.json from before a column
    existed shows "—" there, and only the variants it has."""
    o = results[key]
    phases = o["phases_seconds"]
    healed = phases["healed"] > 0
    if key == "outage_short":
        heading = f"## Outage, short: {o['rate_rps']} requests/s for {phases['hanging']} s, upstream hanging throughout"
        when = ("the upstream hangs from each run's first request to its end (no healthy phase, no heal, so no "
                "recovery columns; the fallback has no stale copy and serves its static answer)")  # fmt: skip
    else:
        heading = "## Outage: the upstream hangs"
        when = f"healthy {phases['healthy']} s, hanging {phases['hanging']} s" + (
            f", healed {phases['healed']} s" if healed else ", no heal (recovery not measured)"
        )
    heal_note = (
        " *First upstream 2xx after heal*: the first answer of the healed upstream to reach a client (not a fallback's "
        "copy); — in a run with a healed phase: none before the run ended."
        if healed else ""
    )  # fmt: skip
    heal_columns = " | breaker closed after heal | first upstream 2xx after heal" if healed else ""
    lines = [
        "",
        heading,
        "",
        f"oha at {o['rate_rps']} requests/s (open loop, GET); route timeout {o['route_timeout_s']} s; {when}. Figures for "
        "requests sent while the upstream hung. *Waited the timeout*: answered after at least the route timeout − 0.1 s, or "
        "with a 504. *Time to open*: the first rejection by the breaker, or the first `UH` (no healthy upstream) once "
        "outlier detection ejected the host. *Reached the hanging upstream*: requests the upstream received while it "
        f"hung.{heal_note}",
        "",
        "| | p50 ms | p99 ms | p99 once open, ms | waited the timeout | success | time to open | requests before open "
        f"| reached the hanging upstream | reached upstream while open{heal_columns} |",
        "|---|---|---|---|---|---|---|---|---|---|" + ("---|---|" if healed else ""),
    ]
    for name, s in o["scenarios"].items():
        open_ = s.get("upstream_requests_while_open")
        reached = f"{open_['probes']} probes, {open_['other']} other" if open_ else "all"
        share = s.get("waited_timeout_share", s["waited_timeout"] / max(s["requests_during_hang"], 1))
        opened = fmt_opt(s.get("time_to_open_ms"), "{} ms")
        if "outlier_ejections" in s:
            opened += f" (ejected {s['outlier_ejections']}×)"
        before = fmt_opt(s.get("requests_before_open"), "{}")
        if s.get("released"):
            before += f" ({s['released']} released)"
        heal_cells = (
            f" | {fmt_opt(s.get('recovery_after_heal_ms'), '{} ms')} | {fmt_opt(s.get('first_upstream_2xx_after_heal_ms'), '{} ms')}"
            if healed else ""
        )  # fmt: skip
        lines.append(
            f"| {name} | {s['p50_ms']:.1f} | {s['p99_ms']:.1f} | {fmt_opt(s.get('p99_after_open_ms'), '{:.1f}')} "
            f"| {s['waited_timeout']} of {s['requests_during_hang']} ({share * 100:.1f} %) "
            f"| {s['success_rate'] * 100:.1f} % | {opened} | {before} "
            f"| {fmt_opt(s.get('upstream_requests_during_hang'), '{}')} | {reached}{heal_cells} |"
        )
    if o.get("release_in_flight_supported") is False:
        lines += ["", f"*{RELEASE_VARIANT}* was not run: `dist/circuit_breaker.wasm` does not know "
                      "`open.release_in_flight` yet."]  # fmt: skip
    if key == "outage_short":
        lines += ["", short_goals(o)]
    return lines


def short_goals(o: dict) -> str:
    """The issue's goals for the short scenario, from the release variant's figures: no request
    waits out the route timeout; p99 during the hang ≤ hang_after + 150 ms; at most a quarter of
    the requests the best native variant (outlier detection) lets reach the hanging upstream."""
    scenarios = o["scenarios"]
    r = scenarios.get(RELEASE_VARIANT)
    if r is None:
        return f"**The issue's goals, with release**: not measured (no *{RELEASE_VARIANT}* in this run)."

    def verdict(met: bool) -> str:
        return "met" if met else "**not met**"

    share = r.get("waited_timeout_share", r["waited_timeout"] / max(r["requests_during_hang"], 1))
    waited = (f"waited out the route timeout: {r['waited_timeout']} of {r['requests_during_hang']} ({share * 100:.1f} %), "
              f"goal 0: {verdict(r['waited_timeout'] == 0)}")  # fmt: skip
    hang_after = o.get("hang_after_ms") or HANG_AFTER_MS
    p99_goal = hang_after + 150
    p99_ = (f"p99 during the hang: {r['p99_ms']:.1f} ms, goal ≤ hang_after {hang_after:.0f} ms + 150 ms = {p99_goal:.0f} ms: "
            f"{verdict(r['p99_ms'] <= p99_goal)}")  # fmt: skip
    native = {n: s["upstream_requests_during_hang"] for n, s in scenarios.items()
              if n.startswith("outlier detection") and s.get("upstream_requests_during_hang") is not None}  # fmt: skip
    reached = r.get("upstream_requests_during_hang")
    if native and reached is not None:
        best = min(native, key=native.get)
        limit = native[best] / 4
        upstream = (f"reached the hanging upstream: {reached}, goal ≤ a quarter of the best native variant "
                    f"({best}: {native[best]}), {limit:g}: {verdict(reached <= limit)}")  # fmt: skip
        floor = r.get("upstream_requests_before_hang_after")
        if floor is not None:
            # Sent before any request could have waited hang_after: nothing that waits hang_after
            # to call a request hung can keep these away, so a goal below this is out of reach.
            upstream += (f" ({floor} of them were sent in the first {hang_after:.0f} ms of the hang, before any request "
                         f"could be recognised as hung: the floor for every variant with this hang_after"
                         + (f", above the goal" if floor > limit else "") + ")")  # fmt: skip
    else:
        upstream = "reached the hanging upstream: no outlier detection variant to compare with"
    return f"**The issue's goals, with release** (*{RELEASE_VARIANT}*): {waited}; {p99_}; {upstream}."


def grpc_section(g: dict, machine: dict) -> list[str]:
    method, variants = g["method"], g["variants"]
    measured = g.get("measured", {})
    when = ""  # a gRPC run added to older results says when and on what it ran
    if measured and (measured["commit"], measured["date"][:10]) != (machine["commit"], machine["date"][:10]):
        when = f" Measured apart from the figures above: {measured['date']}, commit `{measured['commit']}`."

    def per_round(a: str, b: str, metric: str, op) -> list[float]:
        return [op(x, y) for x, y in zip(variants[a][metric], variants[b][metric]) if y]

    lines = [
        "",
        "## gRPC unary",
        "",
        f"Unary calls over HTTP/2 (h2c): h2load, {method['connections']} connections × {method['streams_per_connection']} "
        f"streams, closed loop, {method['seconds']} s after {method['warm_up_seconds']} s of warm-up, a {method['request_bytes']}-byte "
        f"gRPC frame per call; upstream nghttpd answering with a {method['reply_bytes']}-byte frame and `grpc-status: 0` in "
        f"trailers; route timeout {method['route_timeout_s']} s. {method['rounds']} interleaved round(s).{when}",
        "",
        "| variant | what | requests/s | × grpc-bare | × grpc-empty-wasm | Envoy CPU µs/call | CPU − grpc-empty-wasm, µs |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, v in variants.items():
        lines.append(
            f"| {name} | {v['description']} | {span(v['throughput_rps'], '{:.0f}')} "
            f"| {span(per_round(name, 'grpc-bare', 'throughput_rps', lambda x, y: x / y), '{:.3f}')} "
            f"| {span(per_round(name, 'grpc-empty-wasm', 'throughput_rps', lambda x, y: x / y), '{:.3f}')} "
            f"| {span(v['envoy_cpu_us_per_call'], '{:.1f}')} "
            f"| {span(per_round(name, 'grpc-empty-wasm', 'envoy_cpu_us_per_call', lambda x, y: x - y), '{:+.1f}')} |"
        )
    if {"grpc-breaker", "grpc-breaker-as-http"} <= variants.keys():
        grpc_path = per_round("grpc-breaker", "grpc-breaker-as-http", "envoy_cpu_us_per_call", lambda x, y: x - y)
        lines += ["", f"The breaker's gRPC path (one grpc-status read from the trailers) against its "
                      f"HTTP path on the same calls: {span(grpc_path, '{:+.1f}')} µs of Envoy CPU per call."]  # fmt: skip
    return lines


def fmt_opt(value, fmt: str) -> str:
    return "—" if value is None else fmt.format(value)


def plots(results: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("svg")
    import matplotlib.pyplot as plt

    plt.rcParams["svg.hashsalt"] = "breakwater"  # stable ids in the SVG
    out.mkdir(exist_ok=True)
    variants = results["variants"]
    names = list(variants)
    colors = {"baseline": "#888888", "breakwater": "#1f6feb", "lua": "#d29922", "native": "#2da44e", "floor": "#bbbbbb"}

    fig, ax = plt.subplots(figsize=(8, 5.5))
    rel = [ratios(results, n, "bare", tput) for n in names]
    mids = [med(r) for r in rel]
    err = [[m - min(r) for m, r in zip(mids, rel)], [max(r) - m for m, r in zip(mids, rel)]]
    ax.barh(names, mids, xerr=err, color=[colors[variants[n]["group"]] for n in names])
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.invert_yaxis()
    ax.set_xlabel("throughput relative to bare Envoy (median, range over rounds)")
    ax.set_title("Throughput, one Envoy worker")
    fig.tight_layout()
    fig.savefig(out / "throughput.svg", metadata={"Date": None})
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(8, 5.5))
    p50 = [med([l["p50_ms"] for l in variants[n]["latency"]]) for n in names]
    p99s = [med(p99(variants[n])) for n in names]
    y = range(len(names))
    ax.barh([i + 0.2 for i in y], p99s, height=0.4, label="p99", color="#1f6feb")
    ax.barh([i - 0.2 for i in y], p50, height=0.4, label="p50", color="#9ecbff")
    ax.set_yticks(list(y), names)
    ax.invert_yaxis()
    ax.set_xlabel(f"latency at {results['method']['latency_rate_rps']} requests/s, ms (open loop)")
    ax.legend()
    ax.set_title("Latency below the knee")
    fig.tight_layout()
    fig.savefig(out / "latency.svg", metadata={"Date": None})
    plt.close(fig)

    o = results["outage"]
    fig, ax = plt.subplots(figsize=(10, 7))
    palette = {"no breaker": "#cf222e", "outlier detection": "#8250df", "outlier detection, panic threshold 0": "#bc4c00",
               "breaker without hang_after": "#bf8700", "breaker": "#1f6feb", "breaker + fallback": "#2da44e",
               "breaker + fallback + release": "#1b7c83"}  # fmt: skip
    for name, s in o["scenarios"].items():
        color = palette.get(name, "#57606a")
        t = [b[0] for b in s["timeline"]]
        ax.plot(t, [max(b[3], 0.01) for b in s["timeline"]], color=color, label=f"{name}: p99", linewidth=1.2)
        ax.plot(t, [max(b[2], 0.01) for b in s["timeline"]], color=color, label=f"{name}: p50", linewidth=0.8,
                linestyle="--")
    ax.axvspan(0, o["phases_seconds"]["hanging"], color="#eeeeee", zorder=0, label="upstream hanging")
    ax.set_yscale("log")
    ax.set_xlabel("seconds since the upstream started hanging")
    ax.set_ylabel("client latency per 0.5 s, ms (log)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), fontsize="x-small", ncol=3)  # below: 7 variants
    ax.set_title(f"Outage at {o['rate_rps']} requests/s, route timeout {o['route_timeout_s']} s")
    fig.tight_layout()
    fig.savefig(out / "outage.svg", metadata={"Date": None})
    plt.close(fig)


def write(results: dict, bench: Path = BENCH) -> None:
    (bench / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (bench / "RESULTS.md").write_text(markdown(results))
    plots(results, bench / "plots")


if __name__ == "__main__":
    write(json.loads((BENCH / "results.json").read_text()))
    sys.exit(0)
