"""The benchmark runner on generated clips: stage graph and caching (a re-run skips finished steps, a killed
run redoes only the unfinished one, a changed setting reruns what depends on it), seeded rows, averaging and
learned-mix rows, the table writer against a hand-made results file, protocol errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fakes import moving_square_frames, write_video
from privvid.benchmark.protocol import Protocol, run_protocol
from privvid.benchmark.table import markdown_table
from privvid.engine.config import EngineError


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bench")
    rng = np.random.default_rng(0)
    for split, n in (("train", 3), ("val", 1)):
        rows = ["path,label"]
        for label in ("small", "big"):
            for i in range(n):
                frames = moving_square_frames(10, width=48, height=40, size=8 if label == "small" else 20)
                frames = [np.clip(f.astype(int) + int(rng.integers(-15, 15)), 0, 255).astype(np.uint8) for f in frames]
                rel = f"{label}/{split}{i}.mp4"
                write_video(root / rel, frames)
                rows.append(f"{rel},{label}")
        (root / f"{split}.csv").write_text("\n".join(rows) + "\n")
    return root


def _proto(clips: Path, mae_epochs: int = 1) -> Protocol:
    return Protocol.from_dict({
        "name": "unit", "preset": "tiny", "size": "nano", "seed": 3, "workers": 0, "eval_epochs": 1,
        "eval_batch_size": 2, "bias": False, "datasets": {"real": "train.csv"},
        "recipes": [
            {"name": "Scratch", "stages": [{"task": "scratch"}]},
            {"name": "MAE", "stages": [{"task": "mae", "data": ["real"], "epochs": mae_epochs, "batch_size": 2,
                                        "settings": {"mae.repeats": 1}}]},
            {"name": "avg", "average": {"of": ["Scratch", "MAE"], "weights": "0.5,0.5"}},
            {"name": "mix", "learned_mix": {"of": ["Scratch", "MAE"]}},
        ],
        "tasks": [{"name": "squares", "train": "train.csv", "val": "val.csv"}],
    }, base=clips)


def test_stages_are_cached_seeded_and_rerun_only_when_needed(clips, tmp_path):
    first = run_protocol(_proto(clips), tmp_path / "a")
    # scratch + mae + average = 3 stages; FT + LP for Scratch, MAE, avg = 6; the mix row is LP only = 1
    assert first["steps"] == {"run": 10, "cached": 0}
    assert set(first["rows"]) == {"Scratch", "MAE", "avg", "mix"} and set(first["rows"]["mix"]) == {"squares/lp"}
    again = run_protocol(_proto(clips), tmp_path / "a")
    assert again["steps"] == {"run": 0, "cached": 10} and again["rows"] == first["rows"]
    # a run killed inside one step: that step left no done.json; only it runs again
    (tmp_path / "a" / "evals" / "MAE" / "lp_squares" / "done.json").unlink()
    assert run_protocol(_proto(clips), tmp_path / "a")["steps"] == {"run": 1, "cached": 9}
    # another MAE setting: the MAE stage, the average built on it and every eval after them rerun
    changed = run_protocol(_proto(clips, mae_epochs=2), tmp_path / "a")
    # cached: the scratch stage and its FT and LP; run: MAE, the average, their FT and LP, the mix's LP
    assert changed["steps"] == {"run": 7, "cached": 3}
    # seeded: the same protocol in a fresh folder gives the same table
    other = run_protocol(_proto(clips), tmp_path / "b")
    assert other["rows"] == first["rows"] and other["top5"] == first["top5"]
    table = (tmp_path / "b" / "table.md").read_text()
    assert table.startswith("| pre-training | squares FT | squares LP | mean FT | mean LP | mean |")
    assert other["classes"] == {"squares": 2} and "The top-5 is not shown for squares (2 classes)" in table
    assert (tmp_path / "b" / "results.png").stat().st_size > 1000
    alpha = json.loads((tmp_path / "b" / "evals" / "mix" / "lp_squares" / "done.json").read_text())["alpha"]
    assert len(alpha) == 1 and sum(alpha[0]) == pytest.approx(1.0)
    # the proportions are in the results and under the table, not only in the step's folder
    assert other["alpha"]["mix"]["squares"] == {"of": ["Scratch", "MAE"], "alpha": alpha}
    assert (f"- mix on squares: learned proportions Scratch {alpha[0][0]:.3f}, MAE {alpha[0][1]:.3f}\n") in table


def test_markdown_table_against_a_hand_made_results_file():
    results = {"protocol": "hand", "seed": 0,
               "rows": {"A": {"t1/ft": 0.5, "t1/lp": 0.25, "t2/ft": 1.0, "t2/lp": 0.75}, "B": {"t1/lp": 0.1}},
               "top5": {"A": {"t1/ft": 0.9, "t1/lp": 0.8, "t2/ft": 1.0, "t2/lp": 1.0}},
               "bias": {"t1": {"M": 0.5, "M_rnd": 0.25, "B": 1.0}, "t2": {"M": 0.0, "M_rnd": 0.25, "B": None}}}
    lines = markdown_table(results).splitlines()
    assert lines[0] == "| pre-training | t1 FT | t1 LP | t2 FT | t2 LP | mean FT | mean LP | mean |"
    assert lines[2] == "| A | 50.0 / 90.0 | 25.0 / 80.0 | 100.0 / 100.0 | 75.0 / 100.0 | 75.0 | 50.0 | 62.5 |"
    assert lines[3] == "| B | - | 10.0 | - | - | - | 10.0 | 10.0 |"
    assert lines[4].startswith("| *bias B = log2(M / M_rnd)* | 1.00 | 1.00 | -inf | -inf |")   # M = 0
    assert "not shown" not in markdown_table(results)
    # the printed table is the same table: top-5 and the FT / LP means used to be in table.md only
    from rich.console import Console

    from privvid.benchmark.table import results_table

    console = Console(width=200, record=True)
    console.print(results_table(results))
    printed = console.export_text()
    assert "top-1 / top-5 (%)" in printed and "50.0 / 90.0" in printed and "75.0 / 100.0" in printed
    assert "mean" in printed and "62.5" in printed and "-inf" in printed
    # top-5 of a task of five classes or fewer is always 100%: left out, and said so
    results["classes"] = {"t1": 400, "t2": 5}
    lines = markdown_table(results).splitlines()
    assert lines[2] == "| A | 50.0 / 90.0 | 25.0 / 80.0 | 100.0 | 75.0 | 75.0 | 50.0 | 62.5 |"
    assert "The top-5 is not shown for t2 (5 classes): with five classes or fewer it is always 100%." in lines
    console = Console(width=200, record=True)
    console.print(results_table(results))
    assert "75.0 / 100.0" not in console.export_text()


def test_protocol_errors_are_named():
    base = {"tasks": [], "recipes": []}
    for recipes, words in (
        ([{"name": "x", "stages": [{"task": "dance"}]}], "unknown stage"),
        ([{"name": "x", "stages": [{"task": "scratch"}]}, {"name": "x", "stages": [{"task": "scratch"}]}], "unique"),
        ([{"name": "a", "average": {"of": ["a", "zzz"]}}], "two or more other recipes"),
        ([{"name": "a"}], "exactly one of"),
    ):
        with pytest.raises(EngineError, match=words):
            Protocol.from_dict({**base, "recipes": recipes})


def test_a_broken_protocol_file_is_one_line_saying_where(tmp_path):
    for name, text, words in (("p.yaml", "recipes:\n  - name: a\n   bad: [1,\n", "p.yaml is not valid YAML: line 3, column 4: "),
                              ("p.json", '{"recipes": [', "p.json is not valid JSON: ")):
        (tmp_path / name).write_text(text)
        with pytest.raises(EngineError, match=words) as info:
            Protocol.load(tmp_path / name)
        assert "\n" not in str(info.value)


def test_a_protocol_is_checked_before_its_first_step(clips, tmp_path):
    # a bad device, a missing list or nothing to run used to surface after the first stages had trained
    out = tmp_path / "run"
    with pytest.raises(EngineError, match="'quantum' is not a device"):
        run_protocol(_proto(clips), out, device="quantum")
    missing = _proto(clips)
    missing.tasks[0].val = str(clips / "nope.csv")
    with pytest.raises(EngineError, match="nope.csv does not exist"):
        run_protocol(missing, out)
    # data only an MAE stage reads needs no labels (one class here): not refused
    one_class = clips / "one_class.csv"
    one_class.write_text("path,label\nsmall/train0.mp4,small\nsmall/train1.mp4,small\n")
    mae_only = _proto(clips)
    mae_only.recipes[1].stages[0].data = [f"real={one_class}"]
    from privvid.benchmark.protocol import check_protocol

    check_protocol(mae_only)
    with pytest.raises(EngineError, match="at least one recipe and one task"):
        run_protocol(Protocol.from_dict({"recipes": [], "tasks": []}), out)
    assert not out.exists()
    with pytest.raises(EngineError, match="must be lists of objects"):
        Protocol.from_dict({"recipes": 5, "tasks": []})
    with pytest.raises(EngineError, match="a protocol is a mapping"):
        Protocol.from_dict([1, 2])
    # a setting a step would refuse, and a val folder without classes, are refused before the first step
    bad = _proto(clips)
    bad.recipes[1].stages[0].settings = {"data.randaug_m": 99}
    with pytest.raises(EngineError, match="recipe 'MAE', stage 1 .mae.: data.randaug_n must be"):
        check_protocol(bad)
    bad = _proto(clips)
    bad.eval_settings = {"model.size": "base"}
    with pytest.raises(EngineError, match="the ft evaluations .eval_settings.: --set model.size"):
        check_protocol(bad)
    flat = clips / "flat_val"
    flat.mkdir(exist_ok=True)
    (flat / "a.mp4").write_bytes((clips / "small" / "val0.mp4").read_bytes())
    bad = _proto(clips)
    bad.tasks[0].val = str(flat)
    with pytest.raises(EngineError, match="val dataset 'flat_val': 1 clips have no class"):
        run_protocol(bad, out)
    assert not out.exists()


def test_a_second_run_into_the_same_folder_is_refused_before_its_first_step(clips, tmp_path):
    # it used to print every cached step and meet the other run's lock only at its first uncached one
    from privvid.runtime.lock import OutputLocked, RunLock

    out = tmp_path / "run"
    with RunLock(out / ".privvid", "lock", folder=out, remove=True):
        said: list[str] = []
        with pytest.raises(OutputLocked, match="another privvid run is writing into"):
            run_protocol(_proto(clips), out, log=said.append)
        assert said == [] and not (out / "stages").exists()
        # the CLI takes it before --tiny / --preset smoke make their data in OUT/data (they re-cut clips a
        # running benchmark was training on)
        from typer.testing import CliRunner

        from privvid.cli.main import app

        cli = CliRunner().invoke(app, ["benchmark", "run", "--tiny", str(clips), "--out", str(out)])
        assert cli.exit_code == 2 and "another privvid run is writing into" in cli.output, cli.output
        assert sorted(p.name for p in out.iterdir()) == [".privvid"]
    first = run_protocol(_proto(clips), out)   # free again: runs, and leaves no lock folder behind
    assert first["steps"]["run"] == 10 and not (out / ".privvid").exists()
    # a protocol refused at its check makes no OUT
    bad = tmp_path / "bad.json"
    bad.write_text('{"recipes": [], "tasks": []}')
    cli = CliRunner().invoke(app, ["benchmark", "run", str(bad), "--out", str(tmp_path / "never" / "out")])
    assert cli.exit_code == 2 and not (tmp_path / "never").exists(), cli.output


def test_protocol_keys_types_and_mixes_are_checked_before_any_step():
    """A misspelt key ran the preset's settings; weights, a mix of a later row or of a learned-mix row failed
    only after every stage had trained (or with an internal error)."""
    def proto(**change):
        doc = {"tasks": [{"name": "t", "train": "a.csv", "val": "b.csv"}], "recipes": [
            {"name": "A", "stages": [{"task": "scratch"}]}, {"name": "B", "stages": [{"task": "scratch"}]}]}
        for key, value in change.items():
            if key == "recipes":
                doc["recipes"] += value
            elif key == "stage":
                doc["recipes"][1]["stages"][0].update(value)
            else:
                doc[key] = value
        return Protocol.from_dict(doc)

    for change, words in (
        ({"eval_epoch": 2}, r"the protocol: unknown key 'eval_epoch' \(did you mean 'eval_epochs'\?\)"),
        ({"stage": {"epoch": 1}}, r"recipe 'B', stage 1: unknown key 'epoch' \(did you mean 'epochs'\?\)"),
        ({"stage": {"epochs": "3"}}, "recipe 'B', stage 1: epochs must be a whole number of at least 1, got '3'"),
        ({"seed": "abc"}, "the protocol's seed must be a whole number of at least 0, got 'abc'"),
        ({"bias": "yes"}, "bias is true or false"),
        ({"recipes": [{"name": "M", "learned_mix": {"of": ["A", "B"], "layerwise": "yes"}}]}, "layerwise is true or false"),
        ({"recipes": [{"name": "v", "average": {"of": ["A", "B"], "weights": "0.7,0.7"}}]},
         "recipe 'v': weights must be >= 0 and sum to 1"),
        ({"recipes": [{"name": "v", "average": {"of": ["A", "B"], "weights": "0.2,0.3,0.5"}}]},
         "recipe 'v': 3 weights for 2 checkpoints"),
        ({"recipes": [{"name": "v", "average": {"of": ["A", "B"], "weight": "0.5,0.5"}}]},
         "recipe 'v': average: unknown key 'weight'"),
        ({"recipes": [{"name": "M", "learned_mix": {"of": ["A", "C"]}}, {"name": "C", "stages": [{"task": "scratch"}]}]},
         r"recipe 'M' mixes \['C'\], which must come earlier"),
        ({"recipes": [{"name": "M", "learned_mix": {"of": ["A", "B"]}}, {"name": "v", "average": {"of": ["M", "A"]}}]},
         r"recipe 'v' mixes \['M'\]: a learned_mix row is a linear probe"),
    ):
        with pytest.raises(EngineError, match=words):
            proto(**change)
    for change, words in (({"modes": "lp"}, "modes are a list of ft and lp"),
                          ({"tasks": [{"name": "/abs/t", "train": "a", "val": "b"}]}, "task name '/abs/t'"),
                          ({"tasks": [{"name": "a/b", "train": "a", "val": "b"}]}, "task name 'a/b'"),
                          ({"recipes": [{"name": "..", "stages": [{"task": "scratch"}]}]}, "recipe name '..'")):
        with pytest.raises(EngineError, match=words):   # names are folders under OUT: none may leave it
            proto(**change)
    assert proto(seed=None).seed == 0                     # YAML's "seed:" with no value: the default
    mix = proto(recipes=[{"name": "M", "learned_mix": {"of": ["A", "B"], "layerwise": None}}]).recipes[2]
    assert mix.learned_mix == {"of": ["A", "B"], "layerwise": False}
    assert proto(recipes=[{"name": "MAE/Align", "stages": [{"task": "scratch"}]}]).recipes[2].name == "MAE/Align"
    # a list of weights, as YAML users write them, is the comma-separated string; _ keys are comments
    got = proto(recipes=[{"name": "v", "average": {"of": ["A", "B"], "weights": [0.25, 0.75]}}], _note="x")
    assert got.recipes[2].average == {"of": ["A", "B"], "weights": "0.25,0.75"}


def test_the_bias_numbers_a_val_list_lacking_a_class_as_its_train_list(tmp_path, monkeypatch):
    """M is the val top-1 of a probe trained on the train list: a val list holding only some of its classes
    (here only blue clips, which the probe gets right, so M must be 100%) was numbered by its own classes."""
    from privvid.benchmark.protocol import Task, representation_bias
    from privvid.curate import encoders

    class Colour:
        def encode(self, frames):
            return np.array([f.reshape(-1, 3).mean(0) for f in frames])

    monkeypatch.setattr(encoders.IMAGE_ENCODERS, "create", lambda name: Colour())
    train, val = ["path,label"], ["path,label"]
    for label, colour in (("blue", (0, 0, 200)), ("red", (200, 0, 0))):
        for i in range(3):
            write_video(tmp_path / label / f"{i}.mp4", [np.full((32, 32, 3), colour, np.uint8)] * 2)
            train.append(f"{label}/{i}.mp4,{label}")
            if label == "red":
                val.append(f"red/{i}.mp4,red")
    (tmp_path / "train.csv").write_text("\n".join(train) + "\n")
    (tmp_path / "val.csv").write_text("\n".join(val) + "\n")   # red is the train list's class 1, its own class 0
    got = representation_bias(Task("t", str(tmp_path / "train.csv"), str(tmp_path / "val.csv")))
    assert got["M"] == 1.0 and got["B"] == pytest.approx(1.0)   # log2(1 / (1/2))


def test_the_smoke_preset_finds_its_clips_from_any_folder(tmp_path, monkeypatch):
    """The default clips follow PRIVVID_SHARED, else the shared folder beside the checkout, never the working
    folder; clips that are not there are one line naming --clips, before any data is made."""
    from privvid.benchmark import presets

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PRIVVID_SHARED", raising=False)
    beside = Path(presets.__file__).resolve().parents[2].parent / "shared" / "data" / "action-clips"
    # outside a checkout (an installed package) the old default, beside the working folder
    assert presets.default_clips() == (beside if beside.is_dir() else Path("../shared/data/action-clips"))
    monkeypatch.setenv("PRIVVID_SHARED", str(tmp_path / "elsewhere"))
    assert presets.default_clips() == tmp_path / "elsewhere" / "data" / "action-clips"
    with pytest.raises(EngineError, match="not at .*elsewhere.*pass --clips DIR"):
        presets.smoke(tmp_path / "data", presets.default_clips())
    assert not (tmp_path / "data").exists()
