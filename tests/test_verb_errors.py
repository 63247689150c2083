"""Bad input to `sample`, `eval` and `report`: exit 2 and one paragraph naming the value and the
fix, never a traceback, and nothing silently accepted. (train's table is in test_errors.py.)"""

import json
import shutil

import pytest

from conftest import compose_config, cli_in_process
from ganlab.training.train import train

SMALL = ["schedule.steps=4", "schedule.ckpt_every=4", "schedule.sample_every=2", "schedule.log_every=2"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A GAN run, a class-conditional run, a classifier run, a sweep folder of two runs, a folder that
    is no run, a run stopped before its first checkpoint, and a file."""
    root = tmp_path_factory.mktemp("verbs")
    train(compose_config(SMALL), root / "gan")
    train(compose_config([*SMALL, "model=cgan"]), root / "cgan")
    train(compose_config(["model=classifier_mlp", "dataset.resolution=16", "model.classifier.hidden=[16]",
                          "schedule.steps=2"]), root / "clf")
    for job in ("0_loss=bce", "1_loss=hinge"):
        shutil.copytree(root / "gan", root / "sweep" / job)
    (root / "not_a_run").mkdir()
    (root / "early" / ".hydra").mkdir(parents=True)
    (root / "early" / "metrics.jsonl").write_text("")
    (root / "early" / "checkpoints").mkdir()
    (root / "a_file.txt").write_text("x")
    return root


BAD = [  # (verb, arguments with {root}, words the message must hold)
    ("sample", ["run={root}/cgan", "labels=[three]"], ["labels=['three']", "class numbers"]),
    ("sample", ["run={root}/cgan", "labels=[]"], ["labels=[]", "at least one class"]),
    ("sample", ["run={root}/gan", "interpolate=-2"], ["interpolate=-2", "at least 2 steps"]),
    ("sample", ["run={root}/gan", "interpolate=1"], ["interpolate=1", "at least 2 steps"]),
    ("sample", ["run={root}/gan", "format=png", "out={root}/a_file.txt"], ["a_file.txt", "writes a folder"]),
    ("sample", ["run={root}/gan", "format=npz", "out={root}/x.png"], ["out=", "x.png", ".npz"]),
    ("sample", ["run={root}/not_a_run"], ["not_a_run is not a run folder"]),
    ("sample", ["run={root}/sweep"], ["is a sweep's folder", "0_loss=bce"]),
    ("sample", ["run={root}/early"], ["no checkpoint yet", "resume=true"]),
    ("sample", ["run={root}/cgan", "flip=Male"], ["flip=Male", "class-conditional", "labels="]),
    ("sample", ["run={root}/gan", "--n", "5"], ["'--n'", "n=VALUE"]),
    ("eval", ["run={root}/gan", "classifier={root}/clf", "n=2"], ["n=2", "too few"]),
    ("eval", ["run={root}/gan", "classifier={root}/clf", "real_n=0"], ["real_n=0", "too few"]),
    ("eval", ["run={root}/gan", "classifier={root}/clf", "metrics=[]"], ["metrics=[]", "names no metric"]),
    ("eval", ["run={root}/gan", "classifier={root}/clf", "metrics=[class_accuracy]"],
     ["class_accuracy", "not class-conditional"]),
    ("eval", ["run={root}/gan", "classifier={root}/clf", "dataset_root="], ["dataset_root= is empty", "leave dataset_root out"]),
    ("eval", ["run={root}/gan", "classifier={root}/clf", "dataset_root={root}/not_a_run"],
     ["could not be read on this machine", "dataset_root=PATH"]),
    ("report", ["{root}/gan", "steps=[abc]"], ["steps=['abc']", "list of numbers"]),
    ("report", ["{root}/gan", "steps=[-5]"], ["steps=[-5]", ">= 0"]),
    ("report", ["{root}/gan", "epochs=[0]"], ["epochs=[0]", "positive"]),
    ("report", ["{root}/gan", "steps=[2]", "epochs=[1]"], ["steps=[2] and epochs=[1]", "Drop one"]),
    ("report", ["{root}/gan", "{root}/gan"], ["given twice"]),
    ("report", ["{root}/sweep", "{root}/sweep/0_loss=bce"], ["given twice"]),
    ("report", ["{root}/missing"], ["missing does not exist"]),
    ("report", ["{root}/gan", "out={root}/a_file.txt/report"], ["out=", "cannot be written"]),
]


@pytest.mark.parametrize("verb,args,words", BAD, ids=[f"{v}:{' '.join(a[1:]) or a[0]}" for v, a, _ in BAD])
def test_bad_input_to_the_verbs_is_one_paragraph_with_exit_2(runs, tmp_path, monkeypatch, capsys, verb, args, words):
    typed = [a.format(root=runs) for a in args]
    before = sorted(p.name for p in runs.rglob("*"))
    code, _, err = cli_in_process(verb, *typed, *([] if verb == "report" else ["device=cpu"]), cwd=tmp_path,
                                  monkeypatch=monkeypatch, capsys=capsys)
    assert code == 2, err
    assert "Traceback" not in err and err.startswith("ganlab: error:") and err.strip().count("\n") == 0, err
    for word in words:
        assert word in err, err
    assert sorted(p.name for p in runs.rglob("*")) == before  # a refused command writes nothing


def test_a_classifier_runs_folder_is_accepted_and_metrics_without_brackets_work(runs, tmp_path, monkeypatch, capsys):
    code, out, err = cli_in_process("eval", f"run={runs / 'gan'}", f"classifier={runs / 'clf'}", "n=40",
                                    "metrics=classifier_fd", f"out={tmp_path / 'e.json'}", "device=cpu", cwd=tmp_path,
                                    monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0, err
    assert list(json.loads((tmp_path / "e.json").read_text())["metrics"]) == ["classifier_fd"]


def test_eval_keeps_what_earlier_evaluations_measured(runs, tmp_path, monkeypatch, capsys):
    out = tmp_path / "eval.json"
    for metrics in ("[classifier_fd]", "[classifier]"):
        code, _, err = cli_in_process("eval", f"run={runs / 'gan'}", f"classifier={runs / 'clf'}", "n=40",
                                      f"metrics={metrics}", f"out={out}", "device=cpu", cwd=tmp_path,
                                      monkeypatch=monkeypatch, capsys=capsys)
        assert code == 0, err
    saved = json.loads(out.read_text())
    assert {"classifier_fd", "classes_covered"} <= set(saved["metrics"])  # the first call's value is kept
    assert saved["protocols"]["classifier_fd"]["generated_count"] == 40


def test_sample_outputs_are_named_by_what_they_hold_and_never_overwritten(runs, tmp_path, monkeypatch, capsys):
    run = tmp_path / "cgan"
    shutil.copytree(runs / "cgan", run)
    written = []
    for extra in ([], ["labels=[3,5]"], ["interpolate=4", "n=8"], []):
        code, out, err = cli_in_process("sample", f"run={run}", "device=cpu", *extra, cwd=tmp_path,
                                        monkeypatch=monkeypatch, capsys=capsys)
        assert code == 0, err
        written += [line.split("wrote ", 1)[1] for line in out.splitlines() if "wrote" in line]
    names = [p.rsplit("/", 1)[1] for p in written]
    assert names == ["last_grid_70.png", "last_labels_3-5_64.png", "last_interpolate4_8.png", "last_grid_70_2.png"]
    assert all((run / "generated" / name).is_file() for name in names)


def test_one_damaged_checkpoint_does_not_fail_a_whole_report(runs, tmp_path, monkeypatch, capsys, caplog):
    sweep = tmp_path / "sweep"
    shutil.copytree(runs / "sweep", sweep)
    for path in (sweep / "0_loss=bce" / "checkpoints").glob("*.pt"):
        path.write_bytes(b"damaged")
    with caplog.at_level("WARNING", logger="ganlab"):
        code, out, err = cli_in_process("report", str(sweep), cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0, err
    warned = [r.getMessage() for r in caplog.records if "curves are shown without its config" in r.getMessage()]
    assert len(warned) == 1 and "0_loss=bce" in warned[0] and "resume" not in warned[0] and "weights_only" not in warned[0]
    assert (sweep / "report" / "runs.md").is_file()
