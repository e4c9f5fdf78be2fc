"""`nasprof search`: a hardware-aware search over a space with a predictor and MnasNet's reward."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from nasprof.commands._arch_options import (
    CellChannelsOption,
    CellsPerStageOption,
    InputOption,
    OutputsOption,
    nb201_options,
)
from nasprof.commands._common import (
    ForceOption,
    JsonOption,
    _StepBar,
    check_counts,
    check_outputs,
    console,
    emit_json,
    err_console,
)


def search_cmd(
    space: Annotated[str, typer.Option("--space", help="Search space name (see `nasprof space list`).")],
    predictor: Annotated[
        Path, typer.Option("--predictor", help="Latency predictor file (from `nasprof predictor fit`).")
    ],
    target_ms: Annotated[float, typer.Option("--target-ms", help="Latency target T in milliseconds (> 0).")],
    budget: Annotated[
        int | None,
        typer.Option("--budget", help="Number of candidates to evaluate (default with --max-queries: 10 per "
                                      "query)."),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Random seed: the same seed, the same result.")] = 0,
    reward: Annotated[
        str, typer.Option("--reward", help="MnasNet reward preset: soft (a=b=-0.07) or hard (a=0, b=-1).")
    ] = "soft",
    alpha: Annotated[
        float | None, typer.Option("--alpha", help="Exponent below the target (overrides the preset).")
    ] = None,
    beta: Annotated[
        float | None, typer.Option("--beta", help="Exponent above the target (overrides the preset).")
    ] = None,
    proxy: Annotated[
        str | None,
        typer.Option("--proxy", help="Accuracy proxy: macs (log10 MACs, the default) or naswot (needs "
                     "torch)."),
    ] = None,
    accuracy: Annotated[
        str | None,
        typer.Option("--accuracy", help="Real accuracy instead of a proxy: a CSV/Parquet table "
                     "(architecture, accuracy), a Python callable module:function (list of architecture "
                     "strings -> one number each), or an accuracy predictor file (`nasprof predictor fit "
                     "--accuracy`)."),
    ] = None,
    minimize_metric: Annotated[
        bool, typer.Option("--minimize-metric", help="The --accuracy metric is an error: lower is better.")
    ] = False,
    allow_missing: Annotated[
        bool, typer.Option("--allow-missing", help="Skip architectures the --accuracy table lacks (default: "
                           "an error saying how many).")
    ] = False,
    max_queries: Annotated[
        int | None,
        typer.Option("--max-queries", help="Most accuracy queries (distinct networks asked; isomorphic nb201 "
                     "networks count once); the JSON records the best so far against them."),
    ] = None,
    confidence: Annotated[
        float | None,
        typer.Option("--confidence", help="Meet the latency target with this confidence by the predictor's "
                     "own error: feasible iff predicted x (1 + q) <= T (default 0.95 with --reward hard)."),
    ] = None,
    surrogate: Annotated[
        str | None,
        typer.Option("--surrogate", help="With --strategy evolution and --accuracy: breed several children "
                     "per query and ask only the one a surrogate rates best: 'online' (a ridge refitted on "
                     "the queries so far) or an accuracy predictor file (`nasprof predictor fit "
                     "--accuracy`)."),
    ] = None,
    truth: Annotated[
        str | None,
        typer.Option("--truth", help="Real latencies of the space (a measurement set NAME[@vN] or "
                     "CSV/Parquet file): report the true constrained optimum and the regret (needs a "
                     "complete --accuracy table)."),
    ] = None,
    input_shape: InputOption = None,
    outputs: OutputsOption = None,
    cell_channels: CellChannelsOption = None,
    cells_per_stage: CellsPerStageOption = None,
    strategy: Annotated[
        str,
        typer.Option(
            "--strategy",
            help="evolution (aging evolution), random, rl (MnasNet's LSTM controller, PPO), or Optuna's tpe, "
            "nsga2, cmaes, qmc (pip install 'nasprof[optuna]').",
        ),
    ] = "evolution",
    population: Annotated[
        int | None, typer.Option("--population", help="With --strategy evolution: population size (100).")
    ] = None,
    tournament: Annotated[
        int | None,
        typer.Option("--tournament", help="With --strategy evolution: members per tournament "
                                          "(25, or a quarter of a smaller --population)."),
    ] = None,
    strategy_state: Annotated[
        Path | None,
        typer.Option(
            "--strategy-state",
            help="With --strategy rl: resume the controller from this JSON file if it exists (a corrupt or "
            "foreign one is refused, left as it is); save it after a search that found a feasible network.",
        ),
    ] = None,
    device: Annotated[
        str | None, typer.Option("--board", help="MCU board whose SRAM and Flash must fit (stm32f746).")
    ] = None,
    top: Annotated[int, typer.Option("--top", help="Rows in the printed table.")] = 10,
    json_out: JsonOption = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="Write the front as a PNG.")] = None,
    export_best: Annotated[
        Path | None, typer.Option("--export-best", help="Export the best architecture to ONNX.")
    ] = None,
    force: ForceOption = False,
) -> None:
    """Search a space for the best MnasNet reward (predicted latency x accuracy): print the top
    architectures, write the Pareto front (JSON, PNG) and export the best one (ONNX)."""
    inputs: list[Path | str | None] = [predictor, strategy_state]
    inputs += [Path(x) for x in (accuracy, truth, surrogate) if x is not None and Path(x).is_file()]
    check_outputs({"--json": json_out, "--plot": plot, "--export-best": export_best}, inputs)
    if strategy_state is not None:
        check_outputs({"--strategy-state": strategy_state}, [predictor])
    check_counts(force, budget=budget)
    from nasprof.errors import InputError
    from nasprof.search.api import check_search_files, evolution_options, export_best_arch, search

    check_search_files(plot, export_best)
    options = evolution_options(strategy, population, tournament)
    net = nb201_options(input_shape, outputs, cell_channels, cells_per_stage)
    what = "queries" if max_queries is not None else "candidates"
    with _StepBar("searching") as bar:
        result = search(
            space, predictor, target_ms, budget=budget, seed=seed, reward=reward, alpha=alpha, beta=beta,
            proxy=proxy, strategy=strategy, device=device, state=strategy_state, strategy_options=options,
            accuracy=accuracy, minimize_metric=minimize_metric, allow_missing=allow_missing,
            max_queries=max_queries, confidence=confidence, options=net or None, truth=truth,
            surrogate=surrogate, on_progress=lambda done, total: bar(done, total, what),
            on_note=lambda line: err_console.print(line, highlight=False),
        )
    if result.best is None:
        emit_json(json_out, result.to_dict(top=top))  # the overflow figures are still worth keeping
        raise InputError(_none_feasible(result))
    if not emit_json(json_out, result.to_dict(top=top)):  # `--json -` prints it instead of the table
        _render_search(result, top)
    if plot is not None:
        from nasprof.search.plot import plot_search

        plot_search(result, plot)
        err_console.print(f"wrote {plot}", highlight=False)
    if export_best is not None:
        export_best_arch(result, export_best)
        err_console.print(f"wrote {export_best}", highlight=False)


def _none_feasible(result: Any) -> str:
    """Why a search found nothing it may return, in one line."""
    if result.constraint:
        limits = result.constraint
        return (f"none of the {result.evaluated} candidates fits {limits.get('device')} "
                f"(SRAM {limits.get('sram_bytes')} B, Flash {limits.get('flash_bytes')} B); "
                "raise --budget or pick a larger board")
    if result.latency_bound is not None:
        b = result.latency_bound
        return (f"none of the {result.evaluated} candidates meets {result.reward.target_ms:g} ms with "
                f"{b.confidence:.0%} confidence (predicted x {1 + b.upper_rel:.3f}); raise --target-ms, "
                "--budget or lower --confidence")
    return f"none of the {result.evaluated} candidates has an accuracy (--allow-missing skipped them all)"


def _render_search(result: Any, top: int) -> None:
    rw = result.reward
    table = Table(
        title=f"{result.space}: top {top} of {result.evaluated} by reward ({rw.name}: a={rw.alpha:g}, "
        f"b={rw.beta:g}, T={rw.target_ms:g} ms)"
    )
    source = result.accuracy_source
    metric = "error" if result.minimize else "accuracy"
    acc_col = f"{metric} ({source['kind']})" if source else f"proxy ({result.proxy})"
    bound = result.latency_bound
    cols = ["#", "latency ms"]
    if bound is not None:
        cols.append(f"{bound.confidence:.0%} interval ms")
    cols += [acc_col, "reward", "MMACs"]
    for col in cols:
        table.add_column(col, justify="right")
    if result.constraint:
        table.add_column("SRAM KiB", justify="right")
        table.add_column("Flash KiB", justify="right")
    ranked = result.top(top)
    for i, c in enumerate(ranked, 1):
        row = [str(i), f"{c.latency_ms:.3f}"]
        if bound is not None and c.latency_interval_ms is not None:
            row.append(f"{c.latency_interval_ms[0]:.3f}-{c.latency_interval_ms[1]:.3f}")
        row += [f"{c.accuracy:.4f}", f"{c.reward:.4f}", f"{c.macs / 1e6:.1f}"]
        if result.constraint:
            row += [f"{(c.sram_bytes or 0) / 1024:.0f}", f"{(c.flash_bytes or 0) / 1024:.0f}"]
        table.add_row(*row)
    console.print(table)
    # Whole strings, one per line, so they can be copied into `nasprof export` or `predict`.
    for i, c in enumerate(ranked, 1):
        console.print(f"{i:>3}  {c.arch}", highlight=False, soft_wrap=True)
    loop = "" if result.loop_seconds is None else f"; {result.loop_seconds:.2f} s proposing and scoring"
    console.print(
        f"evaluated {result.evaluated} in {result.seconds:.2f} s ({result.per_second:,.0f}/s over the whole "
        f"search, loading included{loop}, "
        f"{'integer genotypes' if result.path == 'genotypes' else 'architecture objects'}), "
        f"{result.feasible_count} feasible, Pareto front: {len(result.pareto)} architectures",
        highlight=False,
    )
    if source:
        limit = f" of {source['max_queries']}" if source.get("max_queries") else ""
        console.print(f"accuracy: {source['source']} ({source['kind']}), {source['queries']}{limit} queries",
                      highlight=False)
    if bound is not None:
        console.print(f"latency target {rw.target_ms:g} ms met with {bound.confidence:.0%} confidence: "
                      f"predicted x {1 + bound.upper_rel:.3f} <= T ({bound.method})", highlight=False)
    if result.regret is not None:
        console.print(_regret_line(result.regret), highlight=False)


def _regret_line(r: dict[str, Any]) -> str:
    opt, ret = r.get("optimum"), r.get("returned")
    if opt is None:
        return f"regret: no network of {r['truth']} meets {r['target_ms']:g} ms"
    head = (f"true optimum under {r['target_ms']:g} ms: {opt['accuracy']:.4g} at {opt['latency_ms']:.4g} ms "
            f"({r['feasible_networks']} of {r['networks']} networks meet it)")
    if ret is None or ret.get("accuracy") is None:
        return head + "; the returned network is not in the truth"
    over = " — OVER the true target" if ret["over_target"] else ""
    return (f"{head}; returned: {ret['accuracy']:.4g} at {ret['latency_ms']:.4g} ms{over}; regret "
            f"{r['regret_points']:.3f} points")
