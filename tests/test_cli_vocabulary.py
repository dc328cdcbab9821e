"""Every CLI (trainer, export, runtime, edge): every flag has help, one concept has one
name across them, defaults are shown, and ``--version`` answers."""

from __future__ import annotations

import argparse

import pytest

import edge.cli
import export.cli
import runtime.cli
import trainer.cli
from runtime import cliargs

CLIS = {"trainer": trainer.cli, "export": export.cli, "runtime": runtime.cli, "edge": edge.cli}
# the name of each shared concept, and names it must not go by
ONE_NAME = {
    "--batch": "--batch-size",
    "--limit-test": "--limit",
    "--n-threads": "--threads",
    "--output": "--out",
    "--num-steps": "--T",
    "--dataset": "--data",
    "--as-json": "--json",
    "--batches": "--calib-batches",  # trainer calibrate said --batches
    "--steps": "--T",  # runtime bench and edge pi-bench said --steps
    "--reps": "--repeats",
}


def test_an_old_flag_name_says_its_new_one(capsys):
    with pytest.raises(SystemExit) as e:
        runtime.cli.main(["bench", "m.onnx", "--steps", "5"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "unrecognized arguments: --steps 5 (--steps is now --T)" in err, err
    assert "(see python -m runtime bench -h)" in err  # the sub-command's help, not the top level's
    # the other names the one-vocabulary change retired (a bare "unrecognized arguments")
    for main, argv, hint in (
        (runtime.cli.main, ["bench", "m.onnx", "--batch", "1"], "--batch is now --batch-size"),
        (export.cli.main, ["m.pt", "--check", "--batch", "4"], "--batch is now --batch-size"),
        (trainer.cli.main, ["fit", "--limit-test", "5"], "--limit-test is now --limit"),
        (edge.cli.main, ["pi-bench", "m.onnx", "--threads", "2"], "--threads is now --max-threads"),
    ):
        with pytest.raises(SystemExit) as e:
            main(argv)
        err = capsys.readouterr().err
        assert e.value.code == 2 and hint in err, (argv, err)
    # names two concepts shared, retired for one name each (a command line of before says which)
    for main, argv, hint in (
        (trainer.cli.main, ["fit", "--samples", "3"], "--samples is now --configs-per-batch"),
        (trainer.cli.main, ["search", "m.pt", "--budget-T", "2", "--samples", "3"], "--samples is now --fit-configs"),
        (
            trainer.cli.main,
            ["search", "m.pt", "--budget-T", "2", "--validate", "3"],
            "--validate is now --validate-configs",
        ),
        (trainer.cli.main, ["fit", "--no-bn"], "--no-bn is now --norm none"),
        (trainer.cli.main, ["trev-memory", "--kind", "static"], "--kind is now --data-kind"),
        (export.cli.main, ["m.nir", "--events-us", "4e4"], "--events-us is now --window-us"),
        (runtime.cli.main, ["stream", "m.onnx", "--source", "-", "--format", "evt3"], "--format is now --event-format"),
    ):
        with pytest.raises(SystemExit) as e:
            main(argv)
        err = capsys.readouterr().err
        assert e.value.code == 2 and hint in err, (argv, err)
        assert "--configs-per-batch" not in err or "--fit-configs" not in err, err  # only the sub-command's
    with pytest.raises(SystemExit):  # stream has its own --source; run has no --from to point to
        runtime.cli.main(["run", "m.onnx", "--source", "x.raw"])
    err = capsys.readouterr().err
    assert "unrecognized arguments: --source x.raw (see python -m runtime run -h)" in err, err


@pytest.mark.parametrize("cmd", ["run", "stream"])
def test_time_steps_where_a_policy_says_them_point_to_it(cmd, capsys):
    """`--T 3` is the time steps in trainer, export, bench and pi-bench; run and stream take
    a fixed T as an exit policy, and refused it as a bare unrecognized argument."""
    with pytest.raises(SystemExit) as e:
        runtime.cli.main([cmd, "m.onnx", *(["--source", "x.raw"] if cmd == "stream" else []), "--T", "3"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "unrecognized arguments: --T 3 (--T is --policy fixed:T here)" in err, err


def walk(p: argparse.ArgumentParser):
    for a in p._actions:
        if isinstance(a, argparse._SubParsersAction):
            for sub in a.choices.values():
                yield from walk(sub)
        elif not isinstance(a, (argparse._HelpAction, argparse._VersionAction)):
            yield p.prog, a


ACTIONS = [(prog, a) for mod in CLIS.values() for prog, a in walk(mod.parser())]


@pytest.mark.parametrize(
    "cli, argv, prefix",
    [
        ("trainer", ["fit", "--epoch", "1", "--data", "nosuch"], "--epoch"),  # no work if taken
        ("runtime", ["run", "m.onnx", "--mod", "event"], "--mod"),
        ("export", ["m.pt", "--form", "nir"], "--form"),
        ("edge", ["pi-bench", "m.onnx", "--repeat", "2"], "--repeat"),
    ],
)
def test_a_flag_is_taken_by_its_whole_name_only(cli, argv, prefix, capsys):
    """argparse's prefixes are off: `--dt` would have been read as `--dt-us` (seconds as µs),
    and a flag added later makes a script's prefix ambiguous."""
    with pytest.raises(SystemExit) as e:
        CLIS[cli].main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and f"unrecognized arguments: {prefix}" in err, err


@pytest.mark.parametrize("text, value", [("-inf", float("-inf")), ("-1e-3", -0.001), ("-.5", -0.5), ("-2", -2.0)])
def test_a_negative_number_is_a_value_not_a_flag(text, value):
    """`fit --v-min -inf` (its help's "no clamp") and `--v-min -1e-3` were "expected one
    argument": argparse took only -3 and -.5 as numbers."""
    args = trainer.cli.parser().parse_args(["fit", "--v-min", text])
    assert args.v_min == value


def test_every_flag_and_argument_has_help():
    missing = [f"{prog} {a.option_strings or a.dest}" for prog, a in ACTIONS if not (a.help or "").strip()]
    assert not missing, missing
    assert len(ACTIONS) > 100  # the walk really covered the sub-commands


def test_shared_concepts_have_one_name():
    used = {opt: prog for prog, a in ACTIONS for opt in a.option_strings}
    wrong = {opt: (prog, ONE_NAME[opt]) for opt, prog in used.items() if opt in ONE_NAME}
    assert not wrong, wrong
    # one name, one concept: --source is the event file `runtime stream` reads (export named
    # the framework that wrote a NIR graph so too: that is --from)
    assert {prog for prog, a in ACTIONS if "--source" in a.option_strings} == {"python -m runtime stream"}
    # --threads always means "use N threads"; a sweep is --max-threads
    for prog, a in ACTIONS:
        if "--threads" in a.option_strings:
            assert "1..N" not in (a.help or ""), prog


# every flag that more than one command takes, with the one concept it names in all of them: a
# flag another command starts to take, or a name one command gives a second meaning, must be
# decided here (a second concept gets a name of its own; a retired name goes to RENAMED)
SHARED_CONCEPTS = {
    "--T": "time steps",
    "--backend": "the clock-driven runtime backend",
    "--batch-size": "samples per batch",
    "--binning": "how events are binned into frames",
    "--calib-batches": "BatchNorm re-estimation: training batches",
    "--calib-runs": "BatchNorm re-estimation: draws averaged",
    "--check": "verify the written model for its target",
    "--config": "one T per stage",
    "--data": "a data-set spec",
    "--deterministic": "torch's deterministic algorithms",
    "--dt-us": "µs per time step",
    "--in-shape": "an input shape C H W",
    "--json": "machine-readable output",
    "--limit": "an evenly spread subset of the evaluation split",
    "--mode": "clock-driven or event-driven",
    "--model": "a model name",
    "--norm": "conv normalisation",
    "--out": "the file to write",
    "--plot": "a PNG to write",
    "--policy": "an exit policy",
    "--rules": "exit rules by name (calibrate-exit: its candidates; tradeoff: the rules swept)",
    "--quiet": "less output",
    "--repeats": "timed rounds",
    "--seed": "a random seed",
    "--threads": "threads used",
    "--tmax": "the largest T",
    "--tmin": "the smallest T",
    "--transform": "an event transform",
    "--trev": "T-RevSNN options",
    "--width": "a channel width",
    "--window-us": "µs of events one decision reads",
}


def test_every_command_that_writes_a_file_takes_o_and_out():
    """The file a command writes was `-o` in export and parity run only: `trainer fit -o`
    and `calibrate-exit -o` were refused (the latter as "--out is required")."""
    outs = [(prog, a) for prog, a in ACTIONS if "--out" in a.option_strings]
    assert len(outs) >= 4, [prog for prog, _ in outs]  # edge.pi.parity run is not in CLIS: tests/test_pi_parity
    assert all(a.option_strings == ["-o", "--out"] for _, a in outs), [(p, a.option_strings) for p, a in outs]


def test_every_shared_flag_names_one_declared_concept():
    """`--samples` meant T configurations per batch in fit and the accuracy model's fitted
    configurations in search (and "samples" are data samples in every help text); `--format`
    was export's output and stream's input format: each now has a name of its own."""
    takers: dict[str, set[str]] = {}
    for prog, a in ACTIONS:
        for opt in a.option_strings:
            if opt.startswith("--"):
                takers.setdefault(opt, set()).add(prog)
    shared = {opt for opt, progs in takers.items() if len(progs) > 1}
    declared = set(SHARED_CONCEPTS)
    assert shared == declared, f"undeclared: {sorted(shared - declared)}; one command's: {sorted(declared - shared)}"
    retired = {old for old in cliargs.RENAMED} & set(takers)
    # an old name still taken by some command is only one whose other commands kept it
    assert retired <= {"--threads", "--format", "--source"}, retired
    for old in retired - {"--threads"}:
        assert len(takers[old]) == 1, (old, takers[old])


def test_a_shared_flag_parses_the_same_everywhere():
    """A flag that several commands have is defined once (runtime.cliargs.add_*): the same
    type and action in each, so "--limit 0" or "--plot x.jpg" is refused alike everywhere."""
    forms: dict[str, set[tuple[object, type]]] = {}
    for _, a in ACTIONS:
        for opt in a.option_strings:
            forms.setdefault(opt, set()).add((a.type, type(a)))  # the parse function itself, not its name
    for opt in ("--json", "--data", "--limit", "--batch-size", "--plot", "--seed", "--out", "--repeats", "--window-us"):
        assert len(forms[opt]) == 1, (opt, forms[opt])
    calib = {prog for prog, a in ACTIONS if "--calib-batches" in a.option_strings}
    assert len(calib) >= 3 and len(forms["--calib-batches"]) == 1, forms["--calib-batches"]


def test_help_shows_defaults():
    fmt = trainer.cli.parser()._subparsers._group_actions[0].choices["fit"].format_help()
    assert "(default: 64)" in fmt and "(default: 0.003)" in fmt  # --batch-size, --lr


@pytest.mark.parametrize("name", CLIS)
def test_version(name, capsys):
    with pytest.raises(SystemExit) as e:
        CLIS[name].parser().parse_args(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.startswith("flexsnn ")


def test_flags_only_another_mode_reads_are_refused_at_their_default_values_too(tmp_path, capsys):
    """The "only X reads Y" checks compared values with the defaults: `export --batch-size 4`
    without --check, `pi-bench --limit 200` without --data, `run --mode event --backend auto`
    and `eval --T 2 --calib-batches 10` were accepted and ignored; any other value refused."""
    from edge.cli import main as edge_main
    from export.cli import main as export_main
    from runtime.cli import main as runtime_main
    from tests.conftest import one_error, run_main
    from tests.export_helpers import config, model, static_checkpoint
    from tests.runtime_fixtures import save, tiny_model
    from trainer.checkpoint import save_checkpoint
    from trainer.cli import main as trainer_main

    ckpt = static_checkpoint(tmp_path / "m.pt")
    plain_cfg = config(name="1C1FCW4", in_shape=(1, 8, 8), data="digits:static", bn=False)
    plain = tmp_path / "plain.pt"
    save_checkpoint(plain, plain_cfg, model(plain_cfg), {"test_accuracy": 0.0})
    onnx_path = save(tiny_model(kind="event-frames"), tmp_path / "e.onnx")
    for main, argv, words in (
        (
            export_main,
            [str(ckpt), "-o", str(tmp_path / "x.onnx"), "--batch-size", "4"],
            "only --check reads --batch-size",
        ),
        (edge_main, ["pi-bench", onnx_path, "--limit", "200"], "only --data reads --limit"),
        (runtime_main, ["run", onnx_path, "--mode", "event", "--backend", "auto"], "only that run reads --backend"),
        (trainer_main, ["eval", str(ckpt), "--T", "2", "--calib-batches", "10"], "only --config reads --calib-batches"),
        # no BatchNorm: nothing reads them (export refused them; eval --config, search and fit ignored them)
        (trainer_main, ["eval", str(plain), "--config", "2,2", "--calib-batches", "3"], "has no BatchNorm layers"),
        (
            trainer_main,
            ["fit", "--calib-batches", "5", "--epochs", "1", "--limit-train", "20", "--out", str(tmp_path / "f.pt")],
            "--calib-batches calibrates BatchNorm; this model has none",
        ),
    ):
        code, _, err = run_main(main, capsys, *argv)
        one_error(code, err, words)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.onnx", "m.pt", "plain.pt"]


@pytest.mark.parametrize("rank, printed", [("0", True), ("1", False)])
def test_under_torchrun_a_bad_flag_is_said_once(capsys, monkeypatch, rank, printed):
    """Every torchrun rank parses the same command line: rank 0 says what is wrong, the
    others only exit 2 (two ranks printed the line twice)."""
    monkeypatch.setenv("RANK", rank)
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "1")  # torchrun's; a RANK alone (another job's) silences nothing
    with pytest.raises(SystemExit) as e:
        trainer.cli.main(["fit", "--epochs", "x"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and ("error: --epochs must be an integer" in err) == printed, err
