"""The analysis side of bench/compare.py: summaries of the timed samples, ratios, peak shares,
the budgets (DESIGN.md's, as each Config states them) and the tables printed and put in the
README. Pure functions of the samples: `compare.py --show RESULT.json` re-runs them on a saved run.
"""

import statistics

COMPILED = ("mlpcore", "mlpcore-epoch")  # the compiled path's rows (cfg.budget applies to them)
BASELINE_TOL = 1.05  # "no slower than the baseline build": within this machine's run-to-run noise


def _quantile(xs: list, q: float) -> float:
    s = sorted(xs)
    pos = q * (len(s) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def _summary(times: list) -> dict:
    return {"median_s": statistics.median(times), "p25_s": _quantile(times, 0.25),
            "p75_s": _quantile(times, 0.75), "min_s": min(times), "max_s": max(times),
            "n_samples": len(times)}


def _is_mlpcore(peer: str) -> bool:
    return peer.startswith("mlpcore")


def budget_of(cfg, peer: str) -> dict:
    """The budget a row answers to: the compiled path's (cfg.budget) for mlpcore and mlpcore-epoch,
    an entry point's own (cfg.entry_budgets) for the others; none for peers and baseline rows."""
    if peer in COMPILED:
        return cfg.budget
    return cfg.entry_budgets.get(peer, {})


def _evaluate_budget(cfg, row: dict) -> None:
    """Fill row['budget'] / row['budget_met'] / row['budget_detail'] for mlpcore rows. Budget keys:
    min_vs_torch, min_vs_best (speed-up over PyTorch / the fastest non-mlpcore peer), min_peak_share,
    max_vs ({peer: r}: this row's time at most r times that peer's). A compiled row whose baseline
    twin ("mlpcore@base", --baseline) ran must also be no slower than it (BASELINE_TOL for noise)."""
    b = dict(budget_of(cfg, row["peer"]))
    base = row["peer"] + "@base"
    if row["peer"] in COMPILED and base in (row.get("time_vs") or {}):
        b["max_vs"] = {**b.get("max_vs", {}), base: BASELINE_TOL}
        b["text"] = "; ".join(t for t in (b.get("text"), "no slower than the baseline build") if t)
    row["budget"] = b.get("text")
    row["budget_met"] = None
    row["budget_detail"] = None
    if not _is_mlpcore(row["peer"]) or not b or row.get("median_s") is None:
        return
    checks, detail = [], []

    def check(value, ok, text, missing):
        checks.append(None if value is None else ok(value))
        detail.append(text(value) if value is not None else missing)

    if "min_vs_torch" in b:
        need = b["min_vs_torch"]
        check(row.get("vs_torch"), lambda v: v >= need, lambda v: f"{v:.2f}x PyTorch (need {need:g}x)",
              "no PyTorch row")
    if "min_vs_best" in b:
        need = b["min_vs_best"]
        check(row.get("vs_best"), lambda v: v >= need,
              lambda v: f"{v:.2f}x {row.get('best_peer')} (need {need:g}x)", "no peer row")
    if "min_peak_share" in b:
        need = b["min_peak_share"]
        check(row.get("peak_share"), lambda v: v >= need,
              lambda v: f"{100 * v:.1f}% of peak (need {100 * need:.0f}%)", "no peak")
    for peer, most in b.get("max_vs", {}).items():
        check((row.get("time_vs") or {}).get(peer), lambda v, m=most: v <= m,
              lambda v, p=peer, m=most: f"{v:.2f}x the time of {p} (need <= {m:g}x)", f"no {peer} row")
    row["budget_met"] = None if any(c is None for c in checks) else all(checks)
    row["budget_detail"] = "; ".join(detail)


def _rows_for(cfg, threads: int, raw: list, clock: str) -> list:
    """Analyse one (config, threads) group. `raw`: one dict per peer with "peer", "samples"
    ({"wall": [s], "cpu": [s]}, seconds per step) or "error"/"not_applicable", "inner", "info".
    Returns rows with the chosen clock's summary at top level, both clocks' summaries under "wall"
    and "cpu", throughput and ratios (time_vs: this row's time over every other timed row's). Peak
    share and budget are filled by _analyse."""
    rows = []
    for rw in raw:
        peer = rw["peer"]
        row = {"config": cfg.name, "label": cfg.label(), "sizes": list(cfg.sizes), "batch": cfg.batch,
               "loss": cfg.loss, "kind": cfg.kind, "threads": threads, "peer": peer,
               "inner": rw.get("inner"), "info": rw.get("info", {}), "samples": rw.get("samples")}
        times = (rw.get("samples") or {}).get(clock)
        if rw.get("error") or not times:
            row.update({"median_s": None, "error": rw.get("error") or "no samples",
                        "not_applicable": bool(rw.get("not_applicable"))})
            rows.append(row)
            continue
        row.update(_summary(times))
        row["median_ms"] = 1e3 * row["median_s"]
        row["samples_per_s"] = cfg.batch / row["median_s"]
        row["gflops"] = cfg.flops / row["median_s"] / 1e9
        for c, ts in rw["samples"].items():
            if ts:
                row[c] = _summary(ts)
        rows.append(row)
    timed = {r["peer"]: r["median_s"] for r in rows if r.get("median_s")}
    others = {p: t for p, t in timed.items() if not _is_mlpcore(p)}
    best_peer = min(others, key=others.get) if others else None
    for r in rows:
        if not r.get("median_s"):
            continue
        r["vs_torch"] = timed["torch"] / r["median_s"] if "torch" in timed else None
        r["best_peer"] = best_peer
        r["vs_best"] = others[best_peer] / r["median_s"] if best_peer else None
        r["vs_fastest"] = min(timed.values()) / r["median_s"]
        r["time_vs"] = {p: r["median_s"] / t for p, t in timed.items() if p != r["peer"]}
    return rows


def _peak_summary(samples: dict, n: int, clock: str) -> dict:
    """The SGEMM peak at one thread count from its samples ({"wall": [s], "cpu": [s]} per call)."""
    if not samples.get(clock):
        return {"n": n, "clock": clock, "samples_s": samples, "error": "no samples"}
    s = _summary(samples[clock])
    flop = 2.0 * n ** 3
    return {"n": n, "clock": clock, "median_gflops": flop / s["median_s"] / 1e9,
            "max_gflops": flop / s["min_s"] / 1e9, "min_gflops": flop / s["max_s"] / 1e9,
            "samples_s": samples,
            "method": "ctypes scipy_cblas_sgemm (the scipy_openblas32 library mlpcore links), row-major NN, "
                      "float32, threads via mlpcore.set_num_threads"}


def _analyse(groups: list, clock: str) -> tuple:
    """groups: [(Config, threads, raw, peak)] in display order, `peak` = (n, {"wall": [s], "cpu": [s]}):
    the SGEMM samples taken in that group's own rounds. Returns (rows, group_peaks, peaks): rows for
    the chosen clock with peak shares (against the group's own peak) and budgets filled in, the
    peak of each group, and the peak pooled over all groups per thread count."""
    flat, group_peaks, pooled = [], [], {}
    for cfg, threads, raw, (n, samples) in groups:
        rows = _rows_for(cfg, threads, raw, clock)
        gp = _peak_summary(samples, n, clock)
        group_peaks.append({"config": cfg.name, "threads": threads, **gp})
        pool = pooled.setdefault(threads, (n, {"wall": [], "cpu": []}))
        if pool[0] == n:
            for c in ("wall", "cpu"):
                pool[1][c].extend(samples.get(c, []))
        peak = gp.get("median_gflops")
        for r in rows:
            if r.get("median_s"):
                r["peak_gflops"] = peak
                r["peak_share"] = r["gflops"] / peak if peak else None
            _evaluate_budget(cfg, r)
        flat += rows
    peaks = {t: _peak_summary(smp, n, clock) for t, (n, smp) in pooled.items()}
    return flat, group_peaks, peaks


def _fmt_table(rows: list, peaks: dict, clock: str) -> str:
    """Markdown table, one block of rows per (config, threads), then the peaks."""
    head = ("| workload | thr | peer | median (IQR) | samples/s | GFLOP/s | % peak | x PyTorch | x best peer "
            "| budget |")
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        if not r.get("median_s") and r.get("not_applicable"):
            continue  # an entry point or peer this workload does not measure (the JSON keeps the row)
        if not r.get("median_s"):
            why = "skipped: " + str(r.get("error", ""))[:80]
            lines.append(f"| {r['label']} | {r['threads']} | {r['peer']} | {why} | | | | | | |")
            continue
        if r["kind"] == "infer":
            t = f"{1e6 * r['median_s']:.1f} us ({1e6 * r['p25_s']:.1f}-{1e6 * r['p75_s']:.1f})"
        else:
            t = f"{1e3 * r['median_s']:.3f} ms ({1e3 * r['p25_s']:.3f}-{1e3 * r['p75_s']:.3f})"
        share = f"{100 * r['peak_share']:.0f}%" if r.get("peak_share") is not None else "-"
        vt = f"{r['vs_torch']:.2f}" if r.get("vs_torch") is not None else "-"
        vb = f"{r['vs_best']:.2f}" if r.get("vs_best") is not None else "-"
        if r.get("budget_met") is None:
            pending = _is_mlpcore(r["peer"]) and r.get("budget")
            budget = "? " + str(r["budget_detail"]) if pending else ""
        else:
            budget = ("met: " if r["budget_met"] else "MISSED: ") + r["budget_detail"]
        lines.append(f"| {r['label']} | {r['threads']} | {r['peer']} | {t} | {r['samples_per_s']:,.0f} | "
                     f"{r['gflops']:.1f} | {share} | {vt} | {vb} | {budget} |")
    peak_txt = ", ".join(f"{t} thread{'s' if int(t) > 1 else ''}: {p['median_gflops']:.1f} GFLOP/s "
                         f"(n={p['n']}, range {p['min_gflops']:.1f}-{p['max_gflops']:.1f})"
                         for t, p in sorted(peaks.items()) if p.get("median_gflops"))
    lines.append("")
    lines.append(f"SGEMM peak (scipy_cblas_sgemm, median of all samples): {peak_txt or 'not measured'}; "
                 "'% peak' divides by the peak sampled in the same workload's rounds.")
    what = "wall-clock time" if clock == "wall" else "CPU time of each peer's process (all threads)"
    lines.append(f"Times: {what}; median of interleaved rounds, IQR in brackets.")
    return "\n".join(lines)


def _fmt_time(r: dict) -> str:
    s = r["median_s"]
    return f"{1e6 * s:.1f} us" if r["kind"] == "infer" else f"{1e3 * s:.3f} ms"


def fmt_budgets(rows: list) -> str:
    """One line per budgeted mlpcore row: what the budget asks, what was measured, the verdict."""
    lines = ["| workload | thr | row | budget | measured | verdict |", "|" + "---|" * 6]
    for r in rows:
        if not (_is_mlpcore(r["peer"]) and r.get("budget") and r.get("median_s")):
            continue
        verdict = {True: "met", False: "MISSED", None: "not evaluated"}[r.get("budget_met")]
        lines.append(f"| {r['label']} | {r['threads']} | {r['peer']} ({_fmt_time(r)}) | {r['budget']} | "
                     f"{r.get('budget_detail') or '-'} | {verdict} |")
    return "\n".join(lines) if len(lines) > 2 else ""


README_PEERS = (("mlpcore", "mlpcore"), ("torch", "PyTorch eager"), ("torch-manual", "hand-written PyTorch"),
                ("numpy", "NumPy"), ("sklearn", "scikit-learn"), ("jax", "JAX jit"))
README_ENTRY = (("mlpcore-fit", "`Trainer.fit`, per batch", None),
                ("mlpcore-tob", "`train_on_batch`", "mlpcore-fit"),
                ("mlpcore-loop", "manual loop (`model(x)`, `loss`, `backward`, `step`)", "torch"),
                ("mlpcore-call", "eval-mode `model(x)`", "mlpcore"),
                ("mlpcore-nograd", "`model(x)` under `no_grad()`", "mlpcore"))


def fmt_readme(rows: list) -> str:
    """The README's tables: peers side by side (ms per training step, us per inference call; the
    fastest in bold), mlpcore's entry points against their references, batch-invariant predict
    against the normal one, and the compiled path against a baseline build when one ran."""
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["config"], r["threads"]), {})[r["peer"]] = r
    head = "| workload | threads | " + " | ".join(n for _, n in README_PEERS) + " | mlpcore × PyTorch | " \
           "mlpcore GFLOP/s (% peak) |"
    out = [head, "|" + "---|" * (len(README_PEERS) + 4)]
    entry, inv, base = [], [], []
    for (_, threads), g in groups.items():
        mc = g.get("mlpcore", {})
        any_row = next(iter(g.values()))
        infer = any_row["kind"] == "infer"
        scale = 1e6 if infer else 1e3
        timed = [g[p]["median_s"] for p, _ in README_PEERS if g.get(p, {}).get("median_s")]
        cells = []
        for p, _ in README_PEERS:
            s = g.get(p, {}).get("median_s")
            text = "-" if not s else f"{scale * s:.{1 if infer else 3}f}"
            cells.append(f"**{text}**" if s and s == min(timed) else text)
        vt = f"{mc['vs_torch']:.1f}×" if mc.get("vs_torch") else "-"
        gf = (f"{mc['gflops']:.0f} ({100 * mc['peak_share']:.0f}%)"
              if mc.get("gflops") and mc.get("peak_share") and not infer else "")
        label = any_row["label"] + (", µs" if infer else "")
        out.append(f"| {label} | {threads} | " + " | ".join(cells) + f" | {vt} | {gf} |")
        for peer, name, ref in README_ENTRY:
            r = g.get(peer, {})
            if r.get("median_s"):
                if ref == "torch":
                    ratio = f"{r['vs_torch']:.1f}× faster than PyTorch eager" if r.get("vs_torch") else "-"
                else:
                    ratio = f"{r['time_vs'][ref]:.2f}× {ref}" if ref and ref in r.get("time_vs", {}) else "-"
                if peer in ("mlpcore-call", "mlpcore-nograd") and "numpy" in r.get("time_vs", {}):
                    ratio += f", {r['time_vs']['numpy']:.2f}× numpy"
                verdict = {True: "met", False: "missed", None: ""}[r.get("budget_met")]
                entry.append(f"| {any_row['label']} | {name} | {_fmt_time(r)} | {ratio} | "
                             f"{r.get('budget') or ''} | {verdict} |")
        if g.get("mlpcore-inv", {}).get("median_s") and mc.get("median_s"):
            r = g["mlpcore-inv"]
            cost = r["time_vs"]["mlpcore"]
            inv.append(f"| {r['batch']} | {_fmt_time(mc)} | {_fmt_time(r)} | {cost:.2f}× |")
        for p in ("mlpcore", "mlpcore-epoch"):
            b = g.get(p + "@base", {})
            if b.get("median_s") and g.get(p, {}).get("median_s"):
                base.append(f"| {any_row['label']} | {threads} | {p} | {_fmt_time(g[p])} | {_fmt_time(b)} | "
                            f"{g[p]['time_vs'][p + '@base']:.2f}× |")
    if entry:
        out += ["", "| workload | entry point | median | time ratio | budget | verdict |", "|" + "---|" * 6]
        out += entry
    if inv:
        out += ["", "| batch | predict (OpenBLAS) | batch-invariant | cost |", "|---|---|---|---|"] + inv
    if base:
        out += ["", "| workload | threads | row | this build | baseline build | ratio |", "|" + "---|" * 6]
        out += base
    return "\n".join(out)
