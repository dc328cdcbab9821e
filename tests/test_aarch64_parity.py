"""edge/aarch64_check.sh's comparator: bit-identical or a named failure."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge.pi import parity


def _result() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "fixed/predictions": rng.integers(0, 10, 50),
        "confidence/steps": rng.integers(1, 7, 50),
        "fixed/outputs": rng.random((50, 10)).astype(np.float32),
        "event/spikes/IF_0": rng.integers(0, 5, (50, 4, 3, 3)),
    }


def test_identical_results_pass():
    assert parity.compare(_result(), _result()) == []


def test_an_altered_prediction_fails_naming_array_and_sample():
    b = _result()
    b["fixed/predictions"][17] = (b["fixed/predictions"][17] + 1) % 10
    assert parity.compare(_result(), b) == ["fixed/predictions: 1 of 50 samples differ (first: sample 17)"]


def test_one_ulp_negative_zero_dtype_and_missing_keys_fail():
    a, b = _result(), _result()
    b["fixed/outputs"][3, 2] = np.nextafter(b["fixed/outputs"][3, 2], np.float32(2))  # one ULP
    b["event/spikes/IF_0"] = b["event/spikes/IF_0"].astype(np.int32)
    del b["confidence/steps"]
    a["zero"], b["zero"] = np.zeros(4), -np.zeros(4)  # equal as numbers, not as bits
    assert parity.compare(a, b) == [
        "confidence/steps: only in the first",
        "event/spikes/IF_0: int64[50, 4, 3, 3] vs int32[50, 4, 3, 3]",
        "fixed/outputs: 1 of 50 samples differ (first: sample 3)",
        "zero: 4 of 4 samples differ (first: sample 0)",
    ]


def _exit_code(argv: list[str]) -> int | str | None:
    """The exit status of the parity CLI (it always ends in SystemExit)."""
    with pytest.raises(SystemExit) as e:
        parity.main(argv)
    return e.value.code


def test_compare_cli_exits_1_and_says_failed(tmp_path, capsys):
    a, b = _result(), _result()
    b["confidence/steps"][0] += 1
    np.savez(tmp_path / "a.npz", **a)
    np.savez(tmp_path / "b.npz", **b)
    assert _exit_code(["compare", str(tmp_path / "a.npz"), str(tmp_path / "b.npz")]) == 1
    out = capsys.readouterr().out
    assert "differs: confidence/steps: 1 of 50 samples differ (first: sample 0)" in out
    assert "parity FAILED: 1 of 4 arrays differ" in out


def test_cli_json_compares_results_not_wall_times(tmp_path):
    a = {"n": 3, "accuracy": 0.5, "mean_steps": 4.25, "seconds": 1.0, "ms_per_sample": 3.0, "model": "/a/m.onnx"}
    a |= {"backend": "exact", "warnings": []}  # a string and an empty list compare too
    (tmp_path / "a.json").write_text(json.dumps(a))
    (tmp_path / "b.json").write_text(json.dumps(dict(a, seconds=9.0, ms_per_sample=7.0, model="/work/m.onnx")))
    (tmp_path / "c.json").write_text(json.dumps(dict(a, mean_steps=4.5)))
    load = parity._load
    assert parity.compare(load(str(tmp_path / "a.json")), load(str(tmp_path / "b.json"))) == []
    assert parity.compare(load(str(tmp_path / "a.json")), load(str(tmp_path / "c.json"))) == [
        "cli/mean_steps: 4.25 vs 4.5"
    ]


def test_cli_json_objects_compare_field_by_field(tmp_path):
    """`spikes_per_sample` is an object: equal objects pass, one changed value is named."""
    a = {"accuracy": 0.5, "spikes_per_sample": {"IF_0": 10209.66111111111, "IF_1": 3476.1583333333333}}
    b = json.loads(json.dumps(a))
    c = {"accuracy": 0.5, "spikes_per_sample": {"IF_0": 10209.66111111111, "IF_1": 3476.158333333334}}
    for name, obj in (("a", a), ("b", b), ("c", c)):
        (tmp_path / f"{name}.json").write_text(json.dumps(obj))
    load = parity._load
    assert parity.compare(load(str(tmp_path / "a.json")), load(str(tmp_path / "b.json"))) == []
    assert parity.compare(load(str(tmp_path / "a.json")), load(str(tmp_path / "c.json"))) == [
        "cli/spikes_per_sample/IF_1: 3476.1583333333333 vs 3476.158333333334"
    ]


def test_a_real_runtime_run_json_compares(tmp_path, capsys):
    """What edge/aarch64_check.sh compares: `runtime run --json` holds nulls ("config": null;
    an infinite sd is null), which the list flattening once sent to an assert (a traceback
    on every real file)."""
    from tests.conftest import run_cli
    from tests.runtime_fixtures import save, tiny_model

    model = save(tiny_model(), tmp_path / "m.onnx")
    r = run_cli("runtime", "run", model, "--data", "digits:static", "--limit", "6", "--threads", "1", "--json")
    assert r.returncode == 0, r.stderr
    assert None in json.loads(r.stdout).values()  # what the flattening must take
    (tmp_path / "a.json").write_text(r.stdout)
    changed = json.loads(r.stdout) | {"config": [1, None], "accuracy": 0.0}
    (tmp_path / "b.json").write_text(json.dumps(changed))
    assert _exit_code(["compare", str(tmp_path / "a.json"), str(tmp_path / "a.json")]) in (0, None)
    assert "parity ok" in capsys.readouterr().out
    assert _exit_code(["compare", str(tmp_path / "a.json"), str(tmp_path / "b.json")]) == 1
    out = capsys.readouterr().out
    assert "differs: cli/accuracy" in out and "differs: cli/config" in out


def test_informational_compare_prints_differences_and_exits_0(tmp_path, capsys):
    a, b = _result(), _result()
    b["fixed/outputs"][5, 1] = np.nextafter(b["fixed/outputs"][5, 1], np.float32(2))
    np.savez(tmp_path / "a.npz", **a)
    np.savez(tmp_path / "b.npz", **b)
    assert _exit_code(["compare", "--informational", str(tmp_path / "a.npz"), str(tmp_path / "b.npz")]) == 0
    out = capsys.readouterr().out
    assert "differs: fixed/outputs: 1 of 50 samples differ (first: sample 5)" in out
    assert "parity differs (informational): 1 of 4 arrays differ" in out


def test_parity_files_never_destroy_an_input_and_bad_files_are_one_line(tmp_path, capsys):
    """np.savez appended .npz to the temporary name: an output without that suffix was
    renamed into place empty (0 bytes) and the data left hidden beside it; `run -o INPUTS`
    overwrote the inputs; a folder or a foreign file was a traceback."""
    plain = tmp_path / "inputs"  # no .npz suffix
    assert _exit_code(["inputs", str(plain), "--limit", "3"]) in (0, None)
    assert plain.stat().st_size > 1000 and sorted(p.name for p in tmp_path.iterdir()) == ["inputs"]
    assert len(parity.read_inputs(str(plain)).labels) == 3
    before = plain.read_bytes()
    for argv, needle in [
        (["run", "m.onnx", str(plain), "-o", str(plain)], "is the input"),
        (["compare", str(tmp_path), str(plain)], "is a folder"),
        (["run", "m.onnx", str(tmp_path / "none.npz"), "-o", str(tmp_path / "r.npz")], "does not exist"),
    ]:
        assert _exit_code(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and needle in err and err.count("\n") == 1, err
    (tmp_path / "foreign.npz").write_bytes(b"not a zip")
    assert _exit_code(["compare", str(tmp_path / "foreign.npz"), str(plain)]) == 2
    assert "not an .npz (zip) file" in capsys.readouterr().err
    assert plain.read_bytes() == before


def test_parity_inputs_are_the_digits_data_set(tmp_path):
    """read_inputs built its Dataset by hand (sensor, classes, duration typed again) and cut
    streams at whatever offsets the file held: it is the registry's digits, and a file whose
    offsets do not cut its events into one stream per label is refused."""
    from runtime.data import load_dataset
    from runtime.errors import InputError

    path = tmp_path / "in.npz"
    assert _exit_code(["inputs", str(path), "--limit", "4"]) in (0, None)
    got, want = parity.read_inputs(str(path)), load_dataset("digits", "test", 4)
    assert (got.spec, got.kind, got.shape, got.classes, got.duration_us) == (
        want.spec,
        want.kind,
        want.shape,
        want.classes,
        want.duration_us,
    )
    assert all(np.array_equal(a, b) for a, b in zip(got.events, want.events))
    with np.load(path) as z:
        arrays = dict(z)
    for key, bad, message in [
        ("offsets", arrays["offsets"][::-1], "do not cut its events into one sample per label"),  # descending
        ("offsets", arrays["offsets"].astype(float), "do not cut its events"),  # a TypeError traceback
        ("labels", arrays["labels"] + 10, r"labels range 1\d\.\.1\d; expected 0\.\.9"),  # accepted
        ("events", arrays["events"]["t"], "expected the event records"),
        ("dataset", np.array("{}"), "names no format"),
    ]:
        np.savez(tmp_path / "bad.npz", **{**arrays, key: bad})
        with pytest.raises(InputError, match=message):
            parity.read_inputs(str(tmp_path / "bad.npz"))


def test_an_inputs_file_of_before_the_snapshots_still_reads_as_the_digits(tmp_path):
    """edge/aarch64_check.sh's hosts may hold inputs written before `inputs --data`: the
    digits streams as events, offsets and labels, with no description."""
    from runtime.data import load_dataset
    from runtime.data.digits import save_packed
    from runtime.errors import InputError

    want = load_dataset("digits", "test", 3)
    with open(tmp_path / "old.npz", "wb") as f:
        save_packed(f, list(want.events), want.labels)
    got = parity.read_inputs(str(tmp_path / "old.npz"))
    assert (got.shape, got.classes, got.duration_us) == (want.shape, want.classes, want.duration_us)
    assert all(np.array_equal(a, b) for a, b in zip(got.events, want.events))
    np.savez(tmp_path / "bad.npz", events=np.zeros(3), labels=np.zeros(1, int))
    with pytest.raises(InputError, match="lacks offsets"):
        parity.read_inputs(str(tmp_path / "bad.npz"))


def test_parity_run_says_missed_events_as_a_warning_line(tmp_path, capsys):
    """A fixed-bin model misses the digits' events after its bins: `run` said so in Python's
    file:line form (a UserWarning with its source line), where `runtime run` prints one
    `warning:` line; now as runtime run does, once for the three runs."""
    from tests.edge_fixtures import Conv, chain_model
    from tests.runtime_fixtures import save, with_input

    model = save(with_input(chain_model([Conv(4, pool=2)], classes=10), binning="fixed"), tmp_path / "m.onnx")
    inputs = tmp_path / "in.npz"
    assert _exit_code(["inputs", str(inputs), "--limit", "3"]) in (0, None)
    assert _exit_code(["run", model, str(inputs), "-o", str(tmp_path / "r.npz")]) in (0, None)
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: ") and "events" in lines[0], err
    assert "Warning:" not in err
    assert "fixed/predictions" in parity._load(str(tmp_path / "r.npz"))


def test_compare_refuses_nothing_and_counts_the_arrays_of_both(tmp_path, capsys):
    """A stranger's tour: two empty JSON objects "agreed" (0 of 0 arrays, exit 0); an inputs
    file compared as a result read "18 of 3 arrays differ"; a JSON list of objects (two
    `edge speck --json` outputs) was a TypeError from numpy."""
    empty = tmp_path / "empty.json"
    empty.write_text("{}")
    assert _exit_code(["compare", str(empty), str(empty)]) == 2
    assert "holds no results" in capsys.readouterr().err
    inputs = tmp_path / "in.npz"
    assert _exit_code(["inputs", str(inputs), "--limit", "2"]) in (0, None)
    np.savez(tmp_path / "r.npz", **_result())
    assert _exit_code(["compare", str(inputs), str(tmp_path / "r.npz")]) == 2
    assert "is a parity inputs file, not a parity result" in capsys.readouterr().err
    a, b = _result(), _result()
    del b["fixed/outputs"]
    b["extra"] = np.zeros(3)
    np.savez(tmp_path / "a.npz", **a)
    np.savez(tmp_path / "b.npz", **b)
    assert _exit_code(["compare", str(tmp_path / "a.npz"), str(tmp_path / "b.npz")]) == 1
    assert "parity FAILED: 2 of 5 arrays differ" in capsys.readouterr().out  # 5 names in all, 2 on one side
    layers = {"layers": [{"name": "conv 0", "core": 0, "mem": [1.5, 2]}, {"name": "fc", "core": 3, "mem": [4, 5]}]}
    (tmp_path / "x.json").write_text(json.dumps(layers))
    layers["layers"][1]["core"] = 7
    (tmp_path / "y.json").write_text(json.dumps(layers))
    assert _exit_code(["compare", str(tmp_path / "x.json"), str(tmp_path / "x.json")]) in (0, None)
    assert _exit_code(["compare", str(tmp_path / "x.json"), str(tmp_path / "y.json")]) == 1
    assert "differs: cli/layers/1/core" in capsys.readouterr().out


def test_parity_run_covers_clock_driven_models_and_names_other_sensors(tmp_path, capsys):
    """A model with biases runs clock-driven (`--backend exact` included) but not per event:
    `run` refused it with the event engine's "train without biases" message; a model of
    another sensor was a DataError traceback."""
    from tests.runtime_fixtures import save, tiny_model

    inputs = tmp_path / "in.npz"
    assert _exit_code(["inputs", str(inputs), "--limit", "3"]) in (0, None)
    biased = save(tiny_model(kind="event-frames"), tmp_path / "b.onnx")  # 2x20x20, with biases
    assert _exit_code(["run", biased, str(inputs), "-o", str(tmp_path / "r.npz")]) in (0, None)
    err = capsys.readouterr().err
    assert err.startswith("warning: the event engine cannot run") and "clock-driven runs only" in err, err
    got = parity._load(str(tmp_path / "r.npz"))
    assert "fixed/predictions" in got and not any(k.startswith("event/") for k in got)
    other = save(tiny_model(kind="event-frames", size=16), tmp_path / "o.onnx")
    assert _exit_code(["run", other, str(inputs), "-o", str(tmp_path / "o.npz")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "gives inputs of shape [2, 20, 20], but" in err, err
    assert "expects [2, 16, 16]" in err, err
    assert "write inputs of its data: python -m edge.pi.parity inputs FILE --data SPEC" in err, err
    assert err.count("\n") == 1 and err.count("'digits'") == 1, err


def test_parity_runs_a_model_on_its_own_data_with_its_own_transforms(tmp_path, capsys):
    """`inputs` wrote the digits streams only and `run` refused every other sensor, and ran no
    model transform: an N-MNIST or downsampled deployment could not be checked on the Pi, nor
    the numba refractory filter it runs. Now any test split, run as `runtime run --data` runs
    it: the same predictions as the SDK on the same samples with the model's transforms."""
    from runtime.data import load_dataset
    from runtime.data.transforms import parse_transform
    from runtime.evaluate import run_dataset
    from runtime.policies import FixedT
    from runtime.session import load
    from tests.runtime_fixtures import save, tiny_model, with_input

    transforms = [{"kind": "downsample", "args": [10, 10]}, {"kind": "refractory", "args": [2000]}]
    model = save(with_input(tiny_model(kind="event-frames", size=10), transforms=transforms), tmp_path / "m.onnx")
    inputs = tmp_path / "in.npz"
    assert _exit_code(["inputs", str(inputs), "--data", "digits", "--limit", "5"]) in (0, None)
    assert _exit_code(["run", model, str(inputs), "-o", str(tmp_path / "r.npz")]) in (0, None)
    got = parity._load(str(tmp_path / "r.npz"))
    ds = load_dataset("digits", "test", 5, [parse_transform("downsample:10x10"), parse_transform("refractory:2000")])
    session = load(model, threads=1, backend="exact")
    want = run_dataset(session, ds, FixedT(session.protocol.default_T), 64)
    assert np.array_equal(got["fixed/predictions"], want.predictions)
    assert np.array_equal(got["fixed/outputs"], want.outputs)
    assert "event/predictions" not in got  # this tiny model has biases: clock-driven only, warned
    assert "the event engine cannot run" in capsys.readouterr().err


def test_parity_of_a_static_image_model_runs_clock_driven_and_says_so(tmp_path, capsys):
    from tests.runtime_fixtures import save, tiny_model

    model = save(tiny_model(kind="repeat"), tmp_path / "m.onnx")  # digits:static, 1x8x8
    inputs = tmp_path / "in.npz"
    assert _exit_code(["inputs", str(inputs), "--data", "digits:static", "--limit", "4"]) in (0, None)
    assert capsys.readouterr().out == f"wrote {inputs}: 4 test samples of digits:static (static images, 1x8x8)\n"
    assert parity.read_inputs(str(inputs)).images.shape == (4, 1, 8, 8)
    assert _exit_code(["run", model, str(inputs), "-o", str(tmp_path / "r.npz")]) in (0, None)
    out, err = capsys.readouterr()
    assert out == f"wrote {tmp_path / 'r.npz'}: 8 per-sample arrays of the runs confidence, fixed\n", out
    assert err == "warning: the event engine reads event streams; 'digits:static' holds static images: " + (
        "clock-driven runs only\n"
    )
    got = parity._load(str(tmp_path / "r.npz"))
    assert got["fixed/predictions"].shape == (4,) and not any(k.startswith("event/") for k in got)


def test_inputs_never_overwrite_the_data_they_read(tmp_path, capsys):
    data = tmp_path / "mine.npz"
    rng = np.random.default_rng(0)
    np.savez(data, images=rng.random((10, 1, 4, 4)).astype(np.float32), labels=np.arange(10) % 2)
    before = data.read_bytes()
    assert _exit_code(["inputs", str(data), "--data", f"npz:{data}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert data.read_bytes() == before


def test_inputs_never_replace_a_file_of_another_kind(tmp_path, capsys):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"an ONNX file")
    assert _exit_code(["inputs", str(model), "--limit", "2"]) == 2  # `run` takes the model first: easily swapped
    assert ".onnx names an ONNX file" in capsys.readouterr().err
    assert model.read_bytes() == b"an ONNX file"
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    assert _exit_code(["run", str(model), str(bad), "-o", str(tmp_path / "r.npz")]) == 2
    err = capsys.readouterr().err
    assert err.count("is not a parity inputs file") == 1, err  # said once, not wrapped in itself
