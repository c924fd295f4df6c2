"""Does g2res hold its quality on data it was not tuned on? A PSD x waveform-model matrix
(issue 22).

Each cell is one noise curve x one lalsimulation approximant, simulated on its own (a seed
per cell from --seed):

- noise curves: ``design`` (the simulator's aLIGO/AdV design curves), ``o3low`` (the O3low
  PSD file of benchmarks/sensitivity_injection.py: aLIGO H1, x1.3 L1, AdV V1) and
  ``lines`` (a file written here: the design curves x (f / 100 Hz)^0.7, so another slope,
  with ~1 Hz wide lines 20-100x the floor: a 35 Hz calibration line, 60/120/180 Hz mains
  in H1/L1 and 50/100/150 Hz in V1, violin modes at 500/505 Hz (H1/L1) and 445 Hz (V1));
- approximants (``--approximants``): IMRPhenomD (aligned spins), SEOBNRv4_opt (aligned-spin
  EOB), IMRPhenomXPHM (precessing, the simulator's default); network SNR 4-16.

A cell holds a noise-only training split (--n-train, only for the cache's PSD estimate)
and a test split of --n-test-noise noise + --n-test-signals signals (defaults 2,000 +
1,000: FAP 1e-2 puts 20 noise samples above the threshold; FAP 1e-3 is reported only when
the noise resolves it), preprocessed with the preprocess settings of the scored runs
(their config.yaml), so the cache conditions the data as the runs expect. Scored in
every cell:

1. each ``--runs`` group (finished cv-train run directories) ensembled by
   ``g2res.ensemble.submit.submit`` on the cell's cache;
2. the aligned-spin template bank, placed once per noise curve for the PSD estimated by
   that curve's first cell (``--bank-minimal-match``) and reused across approximants, or
   ``--bank [CURVE=]FILE``; and the exact-template oracle (``sensitivity.baselines``).

Report: per cell AUC and AUC / oracle AUC of every method, efficiency at FAP 1e-2 overall
and per network-SNR bin with 95% bootstrap intervals, the paired AUC (and efficiency)
difference of each group from the bank with its better / worse / not resolved verdict
and the bins where the bank is better beyond the noise; the worst cell (lowest ratio to
its oracle) of each group with issue 22's goal: worst cell >= 0.97 x its oracle and not
below the bank beyond the noise (no paired interval, AUC overall or per bin or
efficiency at FAP 1e-2, below 0). Writes benchmarks/results/generalise.json and
generalise.png. Every step whose output exists in WORKDIR is reused (delete
WORKDIR/cells/<cell>/<file> to redo it); wall and CPU seconds per stage and cell are kept
in WORKDIR/cells/<cell>/timings.json and the JSON.

    python benchmarks/generalise.py --workdir WORK --runs runs/ft-a runs/ft-b
    python benchmarks/generalise.py --workdir WORK --runs ft=runs/ft --runs plain=runs/plain \\
        --bank design=BANK.npz --cell-size SEOBNRv4_opt=2000,500
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _generalise_cells as gc  # noqa: E402
import _generalise_stacks as gs  # noqa: E402
import _sensitivity_table as st  # noqa: E402
import sensitivity as sens  # noqa: E402
from _stacking import WINDOWED  # noqa: E402

RESULTS = Path(__file__).parent / "results"
RESERVED = ("oracle", "template bank", WINDOWED)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--workdir", required=True, help="PSD files, banks and one folder per cell")
    p.add_argument(
        "--runs",
        action="append",
        nargs="+",
        required=True,
        metavar="[NAME=]RUN",
        help="finished cv-train run directories ensembled as one method (RUN,RUN also "
        "works); repeat --runs for more groups, NAME= names a group (default g2res, "
        "g2res-2, ...); the first group's worst cell is the headline",
    )
    p.add_argument(
        "--stack",
        action="append",
        default=[],
        metavar="NAME=STACK_JSON",
        help="a logistic stacker saved by `g2res submit --stack` (NAME.stack.json), applied "
        "unchanged in every cell: its runs submitted on the cell, its bank statistics "
        "recomputed with the cell's bank (`coherent`: --coherent K); scored as a method",
    )
    p.add_argument(
        "--coherent", type=int, default=4, metavar="K",
        help="templates per sample of the coherent SNR a stacker's `coherent` input needs",
    )  # fmt: skip
    p.add_argument(
        "--time-window", type=float, nargs=2, default=None, metavar=("START", "END"),
        help="s: the merger-time window of a stacker's bank_window input (the one its training "
        "set's bank gave: sensitivity_injection.py --time-window prints it); the windowed bank "
        "is then also scored in every cell",
    )  # fmt: skip
    p.add_argument("--noise-curves", nargs="+", default=list(gc.NOISE_CURVES))
    p.add_argument("--approximants", nargs="+", default=list(gc.APPROXIMANTS))
    p.add_argument(
        "--n-train", type=int, default=256, help="noise-only samples per cell for the PSD"
    )
    p.add_argument("--n-test-noise", type=int, default=2000, help="noise test samples per cell")
    p.add_argument("--n-test-signals", type=int, default=1000, help="signal test samples per cell")
    p.add_argument(
        "--cell-size",
        action="append",
        default=[],
        metavar="APPROXIMANT=NOISE,SIGNALS",
        help="test split of that approximant's cells (e.g. a smaller SEOBNRv4_opt=2000,500: "
        "its signals take ~0.04 s each on one core, ~2x IMRPhenomD, and its oracle ~6x)",
    )
    p.add_argument("--snr", type=float, nargs=2, default=(4.0, 16.0), metavar=("LO", "HI"))
    p.add_argument(
        "--bank",
        action="append",
        default=[],
        metavar="[CURVE=]FILE",
        help="template bank .npz for that noise curve (without CURVE=: every curve without "
        "its own); default WORKDIR/banks/<curve>-mm<minimal match>.npz, placed when missing",
    )
    p.add_argument("--bank-minimal-match", type=float, default=0.95)
    p.add_argument("--no-bank", action="store_true", help="leave the template bank out")
    p.add_argument("--workers", type=int, default=2, help="simulation processes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(RESULTS / "generalise.json"))
    p.add_argument("--plot", default=str(RESULTS / "generalise.png"))
    return p.parse_args(argv)


def run_groups(values: list[list[str]]) -> dict[str, list[Path]]:
    """{name: run dirs} of the repeated ``--runs`` values (see parse_args)."""
    groups: dict[str, list[Path]] = {}
    for k, tokens in enumerate(values):
        name = "g2res" if k == 0 else f"g2res-{k + 1}"
        if "=" in tokens[0]:
            name, tokens = tokens[0].split("=", 1)[0], [tokens[0].split("=", 1)[1], *tokens[1:]]
        runs = [Path(r) for t in tokens for r in t.split(",") if r]
        if not name or name in RESERVED or name in groups or not runs:
            raise SystemExit(f"--runs {' '.join(tokens)}: need runs and a new name, not {name!r}")
        groups[name] = runs
    return groups


def cell_sizes(args) -> dict[str, tuple[int, int]]:
    """{approximant: (noise, signals)} of the test split of every approximant."""
    sizes = {a: (args.n_test_noise, args.n_test_signals) for a in args.approximants}
    for item in args.cell_size:
        try:
            name, rest = item.split("=", 1)
            noise, signals = (int(v) for v in rest.split(","))
        except ValueError:
            raise SystemExit(f"--cell-size {item!r}: write APPROXIMANT=NOISE,SIGNALS") from None
        if name not in sizes:
            raise SystemExit(f"--cell-size {item!r}: {name} is not in --approximants")
        sizes[name] = (noise, signals)
    for name, (noise, signals) in sizes.items():
        if noise < 1 or signals < 1:
            raise SystemExit(
                f"{name}: test split {noise} noise + {signals} signals; need >= 1 each"
            )
    return sizes


def bank_files(args, work: Path) -> dict[str, Path]:
    """{noise curve: bank .npz} from ``--bank`` (default WORKDIR/banks/<curve>.npz)."""
    given, default = {}, None
    for item in args.bank:
        curve, _, file = item.rpartition("=")
        if curve and curve not in args.noise_curves:
            raise SystemExit(f"--bank {item!r}: {curve} is not in --noise-curves")
        if not Path(file).is_file():
            raise SystemExit(f"--bank {item!r}: {file} does not exist")
        if curve:
            given[curve] = Path(file)
        else:
            default = Path(file)
    placed = {
        c: work / "banks" / f"{c}-mm{args.bank_minimal_match:g}.npz" for c in args.noise_curves
    }
    return {c: given.get(c, default or placed[c]) for c in args.noise_curves}


def check_bank_source(cell: Path, bank: Path) -> None:
    """Record which bank file scored CELL/template_bank.csv (CELL/template_bank.source);
    SystemExit when a reused CSV came from another bank."""
    from g2res.utils import atomic_open

    source, csv = cell / "template_bank.source", cell / "template_bank.csv"
    want = str(bank.resolve())
    if csv.is_file() and source.is_file() and source.read_text().strip() != want:
        raise SystemExit(
            f"{csv} was filtered with the bank {source.read_text().strip()}, not {want}; "
            f"delete {csv} to redo it"
        )
    if not source.is_file():
        with atomic_open(source, "w") as fh:
            fh.write(want + "\n")


def place_bank(cache: Path, path: Path, minimal_match: float, seed: int) -> Path:
    """Place the aligned-spin stochastic bank (g2res.baselines.bank, matched_filter's
    defaults: 7-50 Msun, spins <= 0.99, IMRPhenomD) for the PSD of ``cache``; save it."""
    import numpy as np

    from g2res.baselines.bank import stochastic_bank
    from g2res.baselines.matched_filter import N_SAMPLES, SAMPLE_RATE, load_filter_psd
    from g2res.utils import resolve_device

    freqs = np.fft.rfftfreq(N_SAMPLES, 1.0 / SAMPLE_RATE)
    psd = load_filter_psd(cache / "psd.npz")
    bank = stochastic_bank(psd, freqs, minimal_match=minimal_match, seed=seed,
                           device=resolve_device("auto"))  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    return bank.save(path)


def submit_group(runs: list[Path], cache: Path, cell: Path, name: str, timer: st.Timer) -> Path:
    """The ensemble of ``runs`` on ``cache``: CELL/runs-<name>-<hash of the run paths>.csv,
    made when missing (so another --runs list never reuses a stale file)."""
    from g2res.ensemble.submit import submit

    key = "\n".join(str(r.resolve()) for r in runs)
    csv = cell / f"runs-{name}-{hashlib.sha1(key.encode()).hexdigest()[:8]}.csv"
    if not csv.is_file():
        timer(f"submit {name}", lambda: submit(runs, cache, csv, progress=False))
    return csv


def check_data(data: Path, sim) -> None:
    """SystemExit when a reused cell's data set was simulated with another approximant,
    PSD file or SNR range than ``sim`` asks (truth/simulate.json)."""
    import json

    from g2res.data.simulate import SETTINGS_FILE

    got = json.loads((data / SETTINGS_FILE).read_text())["config"]
    name = lambda f: None if f is None else Path(f).name  # noqa: E731  (a moved WORKDIR)
    got["psd"] = name(got.get("psd"))
    want = {"approximant": sim.approximant, "psd": name(sim.psd), "snr": list(sim.snr)}
    differ = {k: (got.get(k), v) for k, v in want.items() if got.get(k) != v}
    if differ:
        raise SystemExit(f"{data}: simulated with {differ} (found, asked); delete it")


def main(argv=None) -> dict:
    import platform

    from g2res.config import SimulateConfig
    from g2res.utils import write_json

    args = parse_args(argv)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    groups = run_groups(args.runs)
    stacks = gs.parse_stacks(args.stack, {*groups, *RESERVED})
    if args.no_bank and gs.needs_bank(stacks):
        raise SystemExit("--stack: a stacker with bank statistics cannot run with --no-bank")
    if gs.needs_window(stacks) and args.time_window is None:
        raise SystemExit(f"--stack {', '.join(gs.needs_window(stacks))}: a windowed-bank "
                         "input needs --time-window START END")  # fmt: skip
    pre = gc.runs_preprocess({**groups, **gs.stack_runs(stacks)})
    sizes = cell_sizes(args)
    curves = gc.noise_curve_files(args.noise_curves, work / "psd")
    banks = {} if args.no_bank else bank_files(args, work)
    timer = st.Timer(work / "timings.json")  # the banks; each cell keeps its own stages
    cells, timers = {}, {}
    for curve, psd_file in curves.items():
        for approximant in args.approximants:
            name = gc.cell_name(curve, approximant)
            folder, seed = work / "cells" / name, gc.cell_seed(args.seed, curve, approximant)
            noise, signals = sizes[approximant]
            sim = SimulateConfig(
                n_train=args.n_train,
                signal_fraction=0.0,
                n_test=noise + signals,
                test_signal_fraction=signals / (noise + signals),
                snr=tuple(args.snr),
                approximant=approximant,
                psd=psd_file,
                workers=args.workers,
            )
            print(f"\n== cell {name} (seed {seed}) ==", flush=True)
            folder.mkdir(parents=True, exist_ok=True)
            timers[name] = ct = st.Timer(folder / "timings.json")
            if (folder / "data" / "sample_submission.csv").is_file():
                check_data(folder / "data", sim)  # before a reused data set is preprocessed
            data, cache = sens.prepare_data(folder, sim, pre, seed, ct)
            gc.check_cache(cache, pre)
            if banks and not banks[curve].is_file():
                place = (cache, banks[curve], args.bank_minimal_match, args.seed)
                timer(f"bank {curve}", lambda place=place: place_bank(*place))
            subs = {g: submit_group(runs, cache, folder, g, ct) for g, runs in groups.items()}
            bank = str(banks[curve]) if banks else None
            if bank:
                check_bank_source(folder, banks[curve])
            subs.update(sens.baselines(data, cache, folder, seed, ct, bank, not args.no_bank))
            if bank and args.time_window:
                subs[WINDOWED] = gs.window_companion(data, cache, folder, bank,
                                                     args.time_window, seed, ct)  # fmt: skip
            for sname, stack in stacks.items():
                subs[sname] = gs.stack_cell(sname, stack, cache, data, folder, bank, args.coherent,
                                            seed, ct, submit_group, args.time_window)  # fmt: skip
            order = {"oracle": 0, "template bank": 1}
            subs = dict(sorted(subs.items(), key=lambda kv: order.get(kv[0], 2)))
            cells[name] = {
                "noise_curve": curve,
                "psd_file": psd_file,
                "approximant": approximant,
                "seed": seed,
                "n_test_noise": noise,
                "n_test_signals": signals,
                "bank": bank,
                **gc.score_cell(subs, [*groups, *stacks], data),
            }
    scored = [*groups, *stacks]
    goals = {g: gc.goal(cells, g) for g in scored}
    methods = [*scored, *([] if args.no_bank else ["template bank"])]
    methods += [WINDOWED] if args.time_window and not args.no_bank else []
    print("\n" + gc.format_matrix(cells, scored))
    print("\nefficiency at FAP 1e-2 per network-SNR bin (95% bootstrap interval):")
    print(gc.format_efficiency_bins(cells))
    for m in methods:
        print(f"\n{m}: AUC / oracle AUC")
        print(gc.markdown_matrix(cells, list(curves), args.approximants, m))
    print()
    for g in goals.values():
        print(gc.format_goal(g))
    stages_wall: dict[str, float] = dict(timer.wall)
    stages_cpu: dict[str, float] = dict(timer.cpu)
    for t in timers.values():  # each stage summed over the cells
        for total, times in ((stages_wall, t.wall), (stages_cpu, t.cpu)):
            for name, s in times.items():
                total[name] = round(total.get(name, 0.0) + s, 1)
    print(f"\nstages (wall s): {stages_wall}\nstages (CPU s):  {stages_cpu}")
    simulate_rate = {
        c["approximant"]: round(
            timers[n].wall["simulate"] / (args.n_train + c["n_test_noise"] + c["n_test_signals"]), 4
        )  # fmt: skip
        for n, c in cells.items()
        if "simulate" in timers[n].wall
    }
    result = {
        "benchmark": "generalise",
        "data": {
            "noise_curves": {c: f for c, f in curves.items()},
            "approximants": args.approximants,
            "n_train_noise_only": args.n_train,
            "test_sizes": {a: {"noise": n, "signals": s} for a, (n, s) in sizes.items()},
            "snr": list(args.snr),
            "seed": args.seed,
            "lines": {
                "tilt": gc.TILT,
                "pivot_hz": gc.TILT_PIVOT,
                "fwhm_hz": gc.LINE_WIDTH,
                "lines": gc.LINES,
            },  # fmt: skip
        },
        "runs": {g: [str(r) for r in runs] for g, runs in groups.items()},
        "stacks": {n: s["path"] for n, s in stacks.items()},
        "time_window": args.time_window,
        "preprocess": vars(pre),
        "bank_minimal_match": None if args.no_bank else args.bank_minimal_match,
        "banks": {c: str(p) for c, p in banks.items()},
        "fap": float(gc.FAP),
        "faps": list(st.FAPS),
        "n_boot": st.N_BOOT,
        "snr_bins": st.BIN_NAMES,
        "cells": cells,
        "goal": goals,
        "headline": goals[next(iter(groups))],
        "seconds_wall": {"banks": timer.wall, **{n: t.wall for n, t in timers.items()}},
        "seconds_cpu": {"banks": timer.cpu, **{n: t.cpu for n, t in timers.items()}},
        "stage_seconds": {"wall": stages_wall, "cpu": stages_cpu},
        "simulate_wall_s_per_sample": simulate_rate,
        "total_seconds": {"wall": sum(stages_wall.values()), "cpu": sum(stages_cpu.values())},
        "machine": {"cpu_count": __import__("os").cpu_count(), "platform": platform.platform()},
    }
    write_json(args.out, result)
    worst = {g: v["worst_cell"] for g, v in goals.items()}
    gc.plot(cells, list(curves), args.approximants, methods, args.plot, worst)
    print(f"wrote {args.out} and {args.plot}")
    return result


if __name__ == "__main__":
    main()
