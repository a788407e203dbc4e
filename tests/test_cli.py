"""The command line: `gaussdraw bench --quick` and `gaussdraw demo` on CPU."""

from __future__ import annotations

import json

import pytest
import torch

from gaussdraw import bench
from gaussdraw.cli import main


def test_bench_quick_runs_every_config(tmp_path):
    out_json, out_png = tmp_path / "bench.json", tmp_path / "scaling.png"
    text, report = bench.run(device="cpu", quick_mode=True, json_path=str(out_json), plot_path=str(out_png))
    names = [r["config"] for r in report["results"]]
    assert names == list(bench.CONFIGS)
    for row in report["results"]:
        assert row["max_abs_diff_vs_loop"] <= 1e-6, row  # what is timed draws what the loop draws
        assert row["wall_us"] > 0 and row["loop_ms"] > 0 and row["render_wall_us"] > 0
    assert json.loads(out_json.read_text())["environment"]["device"] == "cpu"
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| seed-concat |" in text


def test_bench_markdown_from_saved_report(tmp_path):
    _, report = bench.run(names=["seed-concat"], device="cpu", quick_mode=True)
    text = bench.render_markdown(report)
    assert "| seed-concat |" in text and "torch" in text


def test_cli_bench_quick(capsys):
    assert main(["bench", "seed-batched", "--quick", "--device", "cpu"]) == 0
    assert "| seed-batched |" in capsys.readouterr().out


def test_cli_demo_writes_a_picture(tmp_path, capsys):
    out = tmp_path / "demo.png"
    assert main(["demo", "--out", str(out), "--device", "cpu"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    line = capsys.readouterr().out
    assert "gaussdraw" in line and "per-box loop" in line


def test_quick_configs_are_small():
    for config in bench.CONFIGS.values():
        q = bench.quick(config)
        assert q.max_boxes <= 6 and q.height <= max(4, config.height // 8)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_bench_quick_cuda():
    _, report = bench.run(names=["seed-concat", "large-radius"], device="cuda", quick_mode=True, cpu=False)
    for row in report["results"]:
        assert row["kernel_us"] > 0 and row["max_abs_diff_vs_loop"] <= 1e-6


def test_cli_bench_targets_quick(capsys, tmp_path):
    out_json = tmp_path / "targets.json"
    assert main(["bench", "--targets", "--quick", "--device", "cpu", "--json", str(out_json)]) == 0
    text = capsys.readouterr().out
    for name in ("centernet-coco", "centerpoint-nus", "centerpoint-nus-crowded"):
        assert name in text
    rows = json.loads(out_json.read_text())["targets"]
    assert len(rows) == 3
    for row in rows:  # what is timed gives the loop's targets
        assert row["max_abs_diff_vs_loop"] <= 1e-5 and row["loop_ms"] > 0 and row["wall_us"] > 0


def test_help_version_and_errors(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.startswith("gaussdraw ")
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "``" not in text and "demo" in text and "bench" in text
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    text = capsys.readouterr().out
    assert "[]" not in text and "--json FILE" in text and "--device DEVICE" in text
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "no-such-config"])
    assert exit_info.value.code == 2 and "unknown config 'no-such-config'" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="a machine without a GPU")
def test_unavailable_device_is_one_line():
    for argv in (["demo", "--device", "cuda"], ["bench", "--quick", "--device", "cuda"], ["demo", "--device", "tpu"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        message = str(exit_info.value.code)
        assert message.startswith("gaussdraw: --device") and "\n" not in message


def test_cli_bench_cpu_table_quick(capsys, tmp_path):
    out_json = tmp_path / "cpu.json"
    assert main(["bench", "--cpu-table", "--quick", "seed-concat", "--json", str(out_json)]) == 0
    text = capsys.readouterr().out
    assert "| sample, 1 box | 2 |" in text and "| seed-concat | 1 |" in text
    rows = json.loads(out_json.read_text())["cpu_table"]
    assert [(r["case"], r["threads"]) for r in rows] == [
        (case, threads) for threads in (2, 1) for case in ("sample, 1 box", "sample, 10 boxes", "seed-concat")]
    for row in rows:
        variants = ["gaussdraw_us", "loop_us"] + (["window_max_floor_us"] if row["case"] == "seed-concat" else [])
        for variant in variants:
            spread = row[variant]
            assert 0 < spread["min"] <= spread["median"] <= spread["max"]


def test_window_max_floor_touches_each_window_once():
    from gaussdraw.bench.cpu import _window_max_floor

    heatmap = torch.zeros(2, 6, 7)
    centers, radii, idxes = torch.tensor([[1, 1], [6, 5], [30, 30]]), torch.tensor([1, 2, 1]), torch.tensor([0, 1, 1])
    _window_max_floor(heatmap, centers, radii, idxes)()
    expected = torch.zeros(2, 6, 7)
    expected[0, 0:3, 0:3] = 0.5
    expected[1, 3:6, 4:7] = 0.5  # clipped; the box off the map touches nothing
    assert torch.equal(heatmap, expected)


def test_decode_markdown_from_rows():
    from gaussdraw.bench.decode import decode_markdown, nms_bench

    nms = nms_bench(torch.device("cpu"), sizes=(300, 4000 // 8))
    assert all(row["same_as_loop"] and row["wall_us"] > 0 for row in nms)
    peaks = [{"config": "x", "shape": [1, 2, 3, 4], "k": 5, "gaussdraw GPU us": 2.0, "gaussdraw wall us": 3.0,
              "reference eager GPU us": 4.0, "reference eager wall us": 5.0, "reference compiled GPU us": None,
              "reference compiled wall us": 6.0, "floor_us": 1.0, "scores_equal": True}]
    text = decode_markdown(peaks, nms)
    assert "| x (1, 2, 3, 4) | 5 | 2.0 / 3.0 |" in text and "| 500 |" in text


# the options that select each suite of `gaussdraw bench` (a new suite needs a line here)
SUITE_ARGV = {"draw": ["seed-concat"], "decode": ["--decode"], "cpu-table": ["--cpu-table", "seed-concat"],
              "profile": ["--profile"], "loss": ["--loss"], "loss-variants": ["--loss-variants", "lv.json"],
              "variants": ["--variants", "v.json"], "targets": ["--targets", "centernet-coco"],
              "keypoints": ["--keypoints", "coco"]}


def _record_suites(monkeypatch) -> list:
    """Each suite's runner replaced by one that records (suite, args, device type)."""
    import dataclasses

    ran = []
    monkeypatch.setattr(bench, "SUITES", tuple(
        dataclasses.replace(s, run=lambda a, device, name=s.name: ran.append((name, a, device.type)) or 0)
        for s in bench.SUITES))
    return ran


@pytest.mark.parametrize("cuda", [False, True], ids=["no-gpu", "gpu"])
def test_each_suite_is_reached_by_its_option(monkeypatch, capsys, cuda):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    ran = _record_suites(monkeypatch)
    assert set(SUITE_ARGV) == {s.name for s in bench.SUITES}
    for suite in bench.SUITES:
        ran.clear()
        if suite.needs_gpu and not cuda:  # one line, not a traceback
            with pytest.raises(SystemExit) as exit_info:
                main(["bench", *SUITE_ARGV[suite.name]])
            message = str(exit_info.value.code)
            assert message.startswith(f"gaussdraw: bench {suite.flag} ") and "no CUDA GPU" in message
            assert ran == []
            continue
        assert main(["bench", *SUITE_ARGV[suite.name]]) == 0
        (name, args, device), = ran
        assert name == suite.name and device == ("cuda" if cuda else "cpu")
    ran.clear()  # what the options carry reaches the runner
    main(["bench", "--targets", "centernet-coco", "--quick"])
    main(["bench", "seed-concat", "large-radius", "--device", "cpu", "--no-cpu"])
    assert ran[0][1].targets == ["centernet-coco"] and ran[0][1].quick
    assert ran[1][1].configs == ["seed-concat", "large-radius"] and ran[1][1].no_cpu and ran[1][2] == "cpu"


def test_bench_one_suite_at_a_time(monkeypatch, capsys):
    ran = _record_suites(monkeypatch)
    for argv in (["--decode", "--loss"], ["--targets", "--cpu-table"], ["--variants", "v.json", "--profile"]):
        with pytest.raises(SystemExit) as exit_info:
            main(["bench", *argv])
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and "not allowed with argument" in err and "Traceback" not in err
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "--targets", "no-such-config"])
    assert exit_info.value.code == 2 and "invalid choice: 'no-such-config'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "--loss", "--device", "tpu"])
    assert str(exit_info.value.code).startswith("gaussdraw: --device")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with pytest.raises(SystemExit) as exit_info:  # a GPU suite on a GPU machine, told the CPU
        main(["bench", "--variants", "v.json", "--device", "cpu"])
    assert str(exit_info.value.code) == "gaussdraw: bench --variants times CUDA kernels: use --device cuda, not cpu"
    assert ran == []


# ----------------------------------------------------------------------------
# every subcommand and option, as a new user runs them: a subprocess that sees no GPU
# ----------------------------------------------------------------------------

# (id, argv with {tmp} for a scratch folder, exit status, text that stdout or stderr must hold). Every
# option of `gaussdraw` appears at least once; runs that work use --quick and one small config.
CPU_RUNS = [
    ("version", ["--version"], 0, "gaussdraw "),
    ("help", ["--help"], 0, "bench"),
    ("bench-help", ["bench", "--help"], 0, "--cpu-table"),
    ("demo", ["demo", "--out", "{tmp}/demo.png", "--device", "cpu"], 0, "wrote"),
    ("draw-every-option", ["bench", "seed-concat", "--quick", "--device", "cpu", "--json", "{tmp}/b.json", "--plot",
                           "{tmp}/b.png", "--no-baseline", "--no-cpu", "--cpu-threads", "1"], 0, "| seed-concat |"),
    ("draw-reference-on-cpu", ["bench", "seed-batched", "--quick", "--reference", "{tmp}/reference"], 0,
     "timed on GPUs only"),
    ("decode", ["bench", "--decode", "--quick", "--json", "{tmp}/d.json"], 0, "peaks: timed on CUDA GPUs only"),
    ("cpu-table", ["bench", "--cpu-table", "seed-concat", "--quick", "--json", "{tmp}/c.json"], 0, "| seed-concat |"),
    ("profile", ["bench", "--profile", "--quick"], 0, "function calls"),
    ("targets", ["bench", "--targets", "centernet-coco", "--quick", "--no-cpu", "--cpu-threads", "1", "--json",
                 "{tmp}/t.json"], 0, "centernet-coco"),
    # GPU-only suites and devices: one line, non-zero
    ("loss", ["bench", "--loss"], 1, "gaussdraw: bench --loss times CUDA kernels"),
    ("loss-device-cpu", ["bench", "--loss", "--device", "cpu"], 1, "gaussdraw: bench --loss times CUDA kernels"),
    ("loss-variants", ["bench", "--loss-variants", "{tmp}/lv.json"], 1, "bench --loss-variants times CUDA kernels"),
    ("variants", ["bench", "--variants", "/nonexistent/x.json"], 1, "bench --variants times CUDA kernels"),
    ("demo-cuda", ["demo", "--device", "cuda", "--out", "{tmp}/x.png"], 1, "gaussdraw: --device cuda needs a CUDA GPU"),
    ("bench-device-tpu", ["bench", "--device", "tpu"], 1, "gaussdraw: --device 'tpu' is not a device"),
    # paths that cannot be written or read: one line, before any work
    ("demo-out-missing-folder", ["demo", "--out", "/nonexistent/dir/x.png"], 1, "/nonexistent/dir does not exist"),
    ("demo-out-folder", ["demo", "--out", "{tmp}"], 1, "is a folder: give a file name"),
    ("demo-out-format", ["demo", "--out", "{tmp}/x.txt"], 1, "end the name in .png"),
    ("json-missing-folder", ["bench", "--json", "/nonexistent/x.json"], 1, "--json /nonexistent/x.json: the folder"),
    ("plot-under-a-file", ["bench", "--plot", "{tmp}/file/x.png"], 1, "is a file, not a folder"),
    ("decode-json-missing-folder", ["bench", "--decode", "--json", "/nonexistent/x.json"], 1, "does not exist"),
    ("reference-missing", ["bench", "--reference", "/nonexistent"], 1, "--reference /nonexistent is not a folder"),
    ("reference-empty", ["bench", "--reference", "{tmp}"], 1, "has no load_reference.py"),
    # wrong options: argparse's status 2, in one line
    ("cpu-threads-zero", ["bench", "--cpu-threads", "0"], 2, "argument --cpu-threads: must be a whole number"),
    ("option-not-read", ["bench", "--profile", "--plot", "{tmp}/x.png"], 2, "--profile does not read --plot"),
    ("unknown-config", ["bench", "no-such-config"], 2, "unknown config 'no-such-config'"),
    ("unknown-command", ["dem"], 2, "invalid choice: 'dem'"),
]


@pytest.mark.parametrize("argv, status, expected", [run[1:] for run in CPU_RUNS], ids=[run[0] for run in CPU_RUNS])
def test_cli_on_a_machine_without_gpu(tmp_path, argv, status, expected):
    import os
    import subprocess
    import sys

    import gaussdraw

    (tmp_path / "file").write_text("")
    (tmp_path / "reference").mkdir()
    (tmp_path / "reference" / "load_reference.py").write_text("raise ImportError('not loaded on the CPU')\n")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.update(CUDA_VISIBLE_DEVICES="", PYTHONPATH=os.path.dirname(os.path.dirname(gaussdraw.__file__)))
    done = subprocess.run([sys.executable, "-m", "gaussdraw", *(a.format(tmp=tmp_path) for a in argv)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == status, (done.returncode, done.stdout[-2000:], done.stderr[-2000:])
    assert expected in done.stdout + done.stderr, (done.stdout[-2000:], done.stderr[-2000:])
    if status:  # the whole message is one line, and it says what to do
        assert done.stderr.strip().count("\n") == 0 and ":" in done.stderr, done.stderr


@pytest.mark.parametrize("measured, label", [("wall", "wall time per call (µs)"),
                                             ("kernel", "kernel time, CUDA-graph replay (µs)")])
def test_plot_labels_what_was_measured(monkeypatch, tmp_path, measured, label):
    import matplotlib.figure

    from gaussdraw.bench.report import plot

    drawn = []
    save = matplotlib.figure.Figure.savefig
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig",
                        lambda fig, *a, **k: drawn.append(fig) or save(fig, *a, **k))
    for radii in ((1, 2, 4), (1, 2, 4, 8, 16, 32, 64, 128)):  # a narrow and a wide range
        rows = [dict(radius=r, boxes=8, drawn_pixels=3 * r * r * 8, time_us=300 + r * r * 40.0, measured=measured,
                     shape=[8, 32, 32]) for r in radii]
        plot(rows, str(tmp_path / "plot.png"), "CPU")
        for ax in drawn[-1].axes:
            assert ax.get_ylabel() == label
            ticks = [t.get_text() for t in (*ax.get_yticklabels(), *ax.get_xticklabels(),
                                            *ax.get_yticklabels(minor=True)) if t.get_text()]
            assert ticks and all("$" not in t and "times" not in t and "^" not in t for t in ticks), ticks
    assert "8×32×32" in drawn[-1].axes[1].get_title()
