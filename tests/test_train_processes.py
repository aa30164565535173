"""mmsr train's processes: torchrun ranks that resume, stop or fail, signals to the launcher, and run
directories that move. Tiny models on 32-pixel crops; each torchrun here costs a few seconds of startup."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import test_train
from mmsr.train.checkpoint import list_checkpoints, load_latest, save_checkpoint
from mmsr.train.trainer import FAIL_ENV, class_dir
from test_train import TINY, _free_port
from test_train_guards import ONE, _settings, _train

data_dir = test_train.data_dir  # the fixture: six small images, each with crops of both classes

# Classes that train until a signal stops them, logging every step.
LONG = ["--pixel-steps", "100000", "--early-stop", "0", "--checkpoint-every", "100000", "--log-every", "1"]


def _torchrun(ranks: int, data: Path, out: Path, *options: str) -> list[str]:
    return [
        sys.executable, "-m", "torch.distributed.run",
        "--nnodes", "1", "--nproc-per-node", str(ranks),
        "--master-addr", "127.0.0.1", "--master-port", str(_free_port()),
        # torchrun's own logs: without --log-dir each run leaves a torchelastic_* folder in /tmp.
        "--log-dir", str(out.parent / "torchrun-logs"),
        "-m", "mmsr.train", str(data), "--out", str(out), *options,
    ]  # fmt: skip


def _env(**extra: str) -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", **extra}


def _wait_for_logs(process: subprocess.Popen, run_dir: Path, classes: list[int], lines: int = 2) -> None:
    """Until every class in ``classes`` has logged ``lines`` training steps."""
    logs = [run_dir / "logs" / f"class{k}.jsonl" for k in classes]
    deadline = time.monotonic() + 90
    while not all(p.is_file() and p.read_text().count("\n") >= lines for p in logs):
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "the classes did not start training in 90 s"
        time.sleep(0.2)


# -- 1. torchrun --resume with another rank count ---------------------------------------------------


def test_resume_ranks_are_checked_against_the_checkpoints(tmp_path):
    from mmsr.train.guards import check_resume_ranks

    run_dir = tmp_path / "r.run"
    settings = _settings("--resume", "--run-dir", str(run_dir), "--configs", "1-2w8,2-2w8,2-2w8")
    costs = [1.0, 4.0, 3.0]
    check_resume_ranks(settings, costs, world=4)  # no checkpoints: any rank count
    check_resume_ranks(settings, costs, world=None)
    # The run had 4 ranks: class 1 trained on ranks [1, 3] and wrote 2-rank checkpoints.
    save_checkpoint(class_dir(run_dir, 1), 6, {"ranks": 2, "finished": False, "step": 6}, keep=2)
    save_checkpoint(class_dir(run_dir, 0), 6, {"ranks": 1, "finished": False, "step": 6}, keep=2)
    check_resume_ranks(settings, costs, world=4)
    # Class 2 has no checkpoint: a fifth rank may join it.
    check_resume_ranks(settings, costs, world=5)
    for world, given in ((3, "this torchrun has 3 ranks"), (6, "this torchrun has 6 ranks")):
        with pytest.raises(ValueError) as caught:
            check_resume_ranks(settings, costs, world=world)
        message = str(caught.value)
        assert given in message and "Start torchrun with 4 ranks in all" in message, message
        assert "this run has 3 classes" in message and "class 1 (2-2w8) has checkpoints of 2 ranks" in message
        assert f"delete {class_dir(run_dir, 1)} to retrain that class" in message
    with pytest.raises(ValueError, match=r"mmsr train runs each class in one process.*Start torchrun with 4 ranks"):
        check_resume_ranks(settings, costs, world=None)
    # A fresh start takes any rank count.
    fresh = _settings("--run-dir", str(tmp_path / "new.run"), "--configs", "1-2w8,2-2w8,2-2w8")
    check_resume_ranks(fresh, costs, world=2)


def test_resume_with_one_rank_per_class_suggests_as_many_ranks_as_classes(tmp_path):
    from mmsr.train.guards import check_resume_ranks

    run_dir = tmp_path / "r.run"
    settings = _settings("--resume", "--run-dir", str(run_dir), "--configs", "1-2w8,2-2w8,2-2w8")
    save_checkpoint(class_dir(run_dir, 1), 6, {"ranks": 1, "finished": False, "step": 6}, keep=2)
    for world in (None, 1, 2, 3):  # fewer ranks than classes share them out, one rank per class
        check_resume_ranks(settings, [1.0, 4.0, 2.0], world=world)
    with pytest.raises(ValueError, match=r"would now train on 2 ranks\. Start torchrun with 3 ranks in all"):
        check_resume_ranks(settings, [1.0, 4.0, 2.0], world=4)


def test_a_finished_class_resumes_on_any_rank_count(data_dir, tmp_path):
    # A finished class is read, not trained: its checkpoint's rank count used to refuse the resume.
    from mmsr.train.guards import check_resume_ranks

    run_dir = tmp_path / "f.run"
    settings = _settings("--resume", "--run-dir", str(run_dir), "--configs", "1-2w8,2-2w8,2-2w8")
    save_checkpoint(class_dir(run_dir, 1), 6, {"ranks": 2, "finished": True, "step": 6}, keep=2)
    for world in (None, 1, 3, 4):
        check_resume_ranks(settings, [1.0, 4.0, 2.0], world=world)
    # End to end: a class finished on its own, then resumed where it would train on another count.
    out = tmp_path / "one.safetensors"
    assert _train(data_dir, out, *ONE) == 0
    state, path = load_latest(class_dir(tmp_path / "one.run", 0))
    state["ranks"] = 2  # as if a 2-rank torchrun had trained it
    path.unlink()
    path.with_name(path.name + ".sha256").unlink(missing_ok=True)
    save_checkpoint(path.parent, state["step"], state, keep=2)
    assert _train(data_dir, out, *ONE, "--resume") == 0


@pytest.mark.slow
def test_torchrun_resume_with_another_rank_count_is_refused_before_training(data_dir, tmp_path, monkeypatch):
    from mmsr.cli import main as mmsr_main

    out = tmp_path / "w.safetensors"
    run_dir = tmp_path / "w.run"
    with monkeypatch.context() as patch:
        patch.setenv(FAIL_ENV, "1:6")
        assert mmsr_main(["train", str(data_dir), "--out", str(out), *TINY]) == 1
    checkpoints = {k: list_checkpoints(class_dir(run_dir, k)) for k in (0, 1)}
    plan = (run_dir / "plan.json").read_bytes()
    # Three ranks would give the costlier class two, but its checkpoints are of one.
    done = subprocess.run(_torchrun(3, data_dir, out, *TINY, "--resume"), capture_output=True, text=True,
                          timeout=120, env=_env())  # fmt: skip
    assert done.returncode != 0
    refusal = "error: --resume: this torchrun has 3 ranks, but class 1 (2-2w8) has checkpoints of 1 rank"
    assert done.stderr.count(refusal) == 1, done.stderr[-3000:]  # rank 0 says it, every rank exits
    assert "Start torchrun with 2 ranks in all (--nnodes x --nproc-per-node; this run has 2 classes)" in done.stderr
    assert "CheckpointError" not in done.stderr and "[rank1]" not in done.stderr
    assert done.stderr.count("exitcode  : 2") >= 1, done.stderr[-3000:]
    assert {k: list_checkpoints(class_dir(run_dir, k)) for k in (0, 1)} == checkpoints
    assert (run_dir / "plan.json").read_bytes() == plan


# -- 2, 5. an interrupted or failed torchrun run leaves a summary ---------------------------------------


@pytest.mark.slow
def test_an_interrupted_torchrun_run_writes_each_class_status_to_the_summary(data_dir, tmp_path):
    out = tmp_path / "t.safetensors"
    run_dir = tmp_path / "t.run"
    process = subprocess.Popen(_torchrun(2, data_dir, out, *TINY, *LONG), stderr=subprocess.PIPE, text=True, env=_env())
    _wait_for_logs(process, run_dir, [0, 1])
    process.send_signal(signal.SIGINT)  # Ctrl-C: torchrun passes it to every rank
    _, stderr = process.communicate(timeout=90)
    assert process.returncode != 0
    summary = json.loads((run_dir / "summary.json").read_text())
    for k in (0, 1):
        entry = summary["classes"][k]
        assert entry["status"] == "interrupted" and entry["steps"] >= 2, (entry, stderr[-3000:])
        assert entry["device"] == f"cpu (rank {k})"
        state, path = load_latest(class_dir(run_dir, k))
        assert not state["finished"] and entry["checkpoint"] == path.relative_to(run_dir).as_posix()
    assert "Run the same command with --resume" in stderr and not out.exists()


@pytest.mark.slow
def test_a_diverged_rank_says_so_in_one_line_and_rank_0_still_writes_the_summary(data_dir, tmp_path):
    out = tmp_path / "d.safetensors"
    run_dir = tmp_path / "d.run"
    options = [*TINY, *LONG, "--lr", "1e-4,1e6", "--checkpoint-every", "1"]
    done = subprocess.run(_torchrun(2, data_dir, out, *options), capture_output=True, text=True, timeout=120,
                          env=_env())  # fmt: skip
    assert done.returncode != 0
    assert "mmsr: class 1 (2-2w8) on cpu (rank 1) diverged at step" in done.stderr, done.stderr[-3000:]
    assert "lower --lr (it is 1e+06 for this class)" in done.stderr
    assert "TrainingDiverged" not in done.stderr and "[rank1]" not in done.stderr  # no traceback
    failure = done.stderr[done.stderr.index("Root Cause") :]
    assert "rank      : 1" in failure and "exitcode  : 1" in failure
    # Rank 1 ended without a report; torchrun stopped rank 0, which wrote what it knew, and read the
    # divergence from class 1's log.
    classes = json.loads((run_dir / "summary.json").read_text())["classes"]
    assert classes[0]["status"] == "interrupted"
    assert classes[1]["status"] == "diverged" and "lower --lr (it is 1e+06 for this class)" in classes[1]["error"]
    last = list_checkpoints(class_dir(run_dir, 1))
    assert classes[1]["checkpoint"] == (last[0][1].relative_to(run_dir).as_posix() if last else None)


def test_rank_0_fills_classes_without_a_report_from_their_checkpoints(tmp_path):
    from mmsr.train.torchrun import _unreported

    settings = _settings("--run-dir", str(tmp_path / "u.run"), "--configs", "1-2w8,2-2w8", "--pixel-steps", "10",
                         "--gan-steps", "4")  # fmt: skip
    jobs = settings.jobs()
    assert _unreported(settings, jobs[0], [1], "rank 1 sent no report").checkpoint is None
    save_checkpoint(class_dir(settings.run_dir, 1), 6, {"ranks": 2, "finished": False, "step": 6, "pixel_end": 5},
                    keep=2)  # fmt: skip
    entry = _unreported(settings, jobs[1], [1, 2], "rank 1 sent no report")
    assert (entry.status, entry.steps, entry.pixel_steps, entry.gan_steps) == ("unknown", 6, 5, 1)
    assert entry.planned_steps == 7  # each of the two ranks takes half of 10 + 4 steps
    assert entry.checkpoint == "checkpoints/class1/step00000006.pt" and entry.error.startswith("rank 1 sent no report")
    assert entry.device == "ranks [1, 2]" and entry.ranks == 2
    # The finished checkpoint holds the class's result, as the trainer wrote it.
    result = {"index": 1, "config": "2-2w8", "device": "cpu", "status": "finished", "steps": 7}
    save_checkpoint(class_dir(settings.run_dir, 1), 7, {"ranks": 2, "finished": True, "step": 7, "result": result},
                    keep=2)  # fmt: skip
    entry = _unreported(settings, jobs[1], [1, 2], "rank 1 sent no report")
    assert entry.status == "finished" and entry.steps == 7 and entry.checkpoint == "checkpoints/class1/step00000007.pt"
    assert entry.device == "cpu x2 (ranks [1, 2])" and entry.error is None


# -- 3. a run directory moved with its bundle ------------------------------------------------------------


@pytest.mark.parametrize("record", ["relative", "absolute-only"])
def test_a_finished_run_moved_with_its_bundle_resumes(data_dir, tmp_path, capsys, record):
    before, after = tmp_path / "before", tmp_path / "after"
    assert _train(data_dir, before / "m.safetensors", *ONE, "--pixel-steps", "1") == 0
    summary_path = before / "m.run" / "summary.json"
    if record == "absolute-only":  # as runs before the relative path was recorded wrote it
        summary = json.loads(summary_path.read_text())
        summary["bundle"].pop("relative", None)
        summary_path.write_text(json.dumps(summary))
    before.rename(after)
    out = after / "m.safetensors"
    bundle, summary = out.read_bytes(), (after / "m.run" / "summary.json").read_bytes()
    capsys.readouterr()
    assert _train(data_dir, out, *ONE, "--pixel-steps", "1", "--resume") == 0
    assert "finished earlier and wrote" in capsys.readouterr().err
    assert out.read_bytes() == bundle and (after / "m.run" / "summary.json").read_bytes() == summary

    # A copy of the bundle anywhere else is still not the run's to replace.
    elsewhere = tmp_path / "elsewhere" / "m.safetensors"
    elsewhere.parent.mkdir()
    shutil.copy(out, elsewhere)
    options = [*ONE, "--pixel-steps", "1", "--run-dir", str(after / "m.run"), "--resume"]
    assert _train(data_dir, elsewhere, *options) == 2
    assert "already exists and is not the bundle this run wrote" in capsys.readouterr().err


@contextlib.contextmanager
def _reaped(process: subprocess.Popen):
    """Whatever the block asserts, the launcher it watches is not left running (its workers follow it)."""
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _two_workers(data_dir: Path, tmp_path: Path, name: str, *extra: str, **popen) -> tuple[subprocess.Popen, Path]:
    """`mmsr train` of two classes on two CPU workers, training until a signal stops them; returns the
    launcher process (stderr piped) and its run directory."""
    options = [o if o != "cpu" else "cpu,cpu" for o in TINY]
    command = [sys.executable, "-m", "mmsr", "train", str(data_dir), "--out", str(tmp_path / f"{name}.safetensors"),
               *options, *LONG, *extra]  # fmt: skip
    return subprocess.Popen(command, stderr=subprocess.PIPE, text=True, **popen), tmp_path / f"{name}.run"


# -- 4. SIGINT to the launcher alone ----------------------------------------------------------------------


@pytest.mark.slow
def test_sigint_to_the_launcher_alone_stops_the_workers_at_once(data_dir, tmp_path):
    process, run_dir = _two_workers(data_dir, tmp_path, "i")
    _wait_for_logs(process, run_dir, [0, 1])
    sent = time.monotonic()
    process.send_signal(signal.SIGINT)  # `kill -INT PID`: the workers get nothing from the terminal
    _, stderr = process.communicate(timeout=90)
    waited = time.monotonic() - sent
    assert process.returncode == 130, stderr[-3000:]
    # Without the pass-on the workers would train on until the launcher kills them, _KILL_AFTER_S (60 s)
    # later. The bound leaves room for a loaded machine: 6.2 s once, with two trainings sharing the cores.
    assert waited < 30.0, f"the launcher took {waited:.1f} s to stop its workers"
    summary = json.loads((run_dir / "summary.json").read_text())
    for k in (0, 1):
        assert summary["classes"][k]["status"] == "interrupted"
        state, _ = load_latest(class_dir(run_dir, k))
        assert not state["finished"] and state["step"] >= 2


def _workers_of(launcher: int) -> list[int]:
    children = Path(f"/proc/{launcher}/task/{launcher}/children").read_text().split()
    return [int(pid) for pid in children if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]  # R, S, T...


def _until(condition, seconds: float = 30.0) -> bool:  # generous: the suite may share 2 loaded cores
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads worker states from Linux /proc")
def test_ctrl_z_pauses_the_workers_with_the_launcher(data_dir, tmp_path):
    # Workers have process groups of their own, so the terminal's SIGTSTP reaches the launcher alone:
    # it used to stop while its workers trained on.
    # A process group of its own, whose parent (pytest) is in another group of the session, as a
    # shell's job is: the kernel discards SIGTSTP's stop in an orphaned process group, which pytest's
    # own group is when it runs as a detached background job.
    process, run_dir = _two_workers(data_dir, tmp_path, "z", process_group=0)
    with _reaped(process):
        _wait_for_logs(process, run_dir, [0, 1])
        workers = _workers_of(process.pid)
        assert len(workers) == 2
        process.send_signal(signal.SIGTSTP)
        assert _until(lambda: _state(process.pid) == "T" and all(_state(w) == "T" for w in workers))
        process.send_signal(signal.SIGCONT)
        assert _until(lambda: _state(process.pid) != "T" and all(_state(w) != "T" for w in workers))
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=90)
        assert process.returncode == 130, stderr[-3000:]


_NOHUP = dict(preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))  # what `nohup` does
# A terminal's default, so that a "plain" run is plain even when the tests themselves run under nohup
# (a child inherits an ignored SIGHUP, and the trainer rightly leaves it ignored).
_PLAIN = dict(preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL))


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="finds the workers in Linux /proc")
@pytest.mark.parametrize("nohup", [False, True], ids=["plain", "nohup"])
def test_workers_checkpoint_when_their_launcher_is_killed(data_dir, tmp_path, nohup):
    # kill -9 of the launcher: each worker stops at its step's end and checkpoints (the README's
    # promise). The race that often broke it (the parent-death signal arriving twice) is checked
    # deterministically by the two tests below; here it rarely shows, the tiny steps being short.
    # Under `nohup` every process ignores SIGHUP, which was the parent-death signal: the workers
    # trained on as orphans.
    process, run_dir = _two_workers(data_dir, tmp_path, "d", env=_env(), **(_NOHUP if nohup else _PLAIN))
    workers = []
    with _reaped(process):
        try:
            _wait_for_logs(process, run_dir, [0, 1])
            workers = _workers_of(process.pid)
            assert len(workers) == 2
            process.send_signal(signal.SIGKILL)
            process.communicate(timeout=30)
            assert _until(lambda: not any(Path(f"/proc/{w}").exists() and _state(w) != "Z" for w in workers))
        finally:
            for w in workers:
                if Path(f"/proc/{w}").exists():
                    os.kill(w, signal.SIGKILL)
    for k in (0, 1):
        state, _ = load_latest(class_dir(run_dir, k))
        assert not state["finished"] and state["step"] >= 2
    assert not list((run_dir / "checkpoints").rglob("*.tmp")), "a checkpoint was cut off mid-write"


def test_the_parent_death_signal_is_one_that_never_escalates_however_often_it_comes(tmp_path):
    # A launcher with several threads (torch starts some) dies: the kernel delivered its worker the
    # parent-death signal two or three times here. It must be one the trainer never escalates, not
    # SIGTERM, whose second delivery means "stop at once", and not SIGHUP, which `nohup` ignores.
    from mmsr.train.trainer import PARENT_DIED_SIGNAL

    script = tmp_path / "launcher.py"
    script.write_text(
        "import multiprocessing as mp, os, signal, sys, threading, time\n"
        "from mmsr.train.launch import _die_with_parent\n"
        "def child(parent, path):\n"
        "    _die_with_parent(parent)\n"
        "    got = []\n"
        "    def record(signum, frame):\n"
        "        got.append(signal.Signals(signum).name)\n"
        "        open(path, 'w').write(' '.join(got))\n"
        "    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2):\n"
        "        signal.signal(sig, record)\n"
        "    open(path, 'w').write('ready')\n"
        "    end = time.time() + 4\n"
        "    while time.time() < end:\n"
        "        time.sleep(0.01)\n"
        "    os._exit(0)\n"
        "if __name__ == '__main__':\n"
        "    for _ in range(4):\n"
        "        threading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n"
        "    mp.get_context('spawn').Process(target=child, args=(os.getpid(), sys.argv[1])).start()\n"
        "    time.sleep(60)\n"
    )
    record = tmp_path / "signals.txt"
    launcher = subprocess.Popen([sys.executable, str(script), str(record)])
    try:
        assert _until(lambda: record.exists() and record.read_text() == "ready")
        launcher.send_signal(signal.SIGKILL)
        launcher.wait()
        assert _until(lambda: record.read_text() != "ready", 10)
        time.sleep(0.5)  # any repeats
        received = record.read_text().split()
        assert received and set(received) == {PARENT_DIED_SIGNAL.name}, received
    finally:
        launcher.kill()


@pytest.mark.parametrize("gentle", ["SIGHUP", "SIGUSR1"])
def test_repeated_gentle_signals_ask_the_trainer_once_and_sigterm_still_escalates(gentle):
    # SIGHUP (the terminal closed) and SIGUSR1 (the launcher died, maybe more than once) ask for a
    # stop at the step's end and never escalate.
    from mmsr.train.trainer import PARENT_DIED_SIGNAL, ClassTrainer

    assert PARENT_DIED_SIGNAL == signal.SIGUSR1

    class Trainer:  # the state _signals_stop_at_step_end keeps
        _stop_signal = None

    trainer = Trainer()
    sig = signal.Signals[gentle]
    # Under nohup (pytest started by it) SIGHUP is ignored and the trainer leaves it so; this is the
    # plain case (the next test is the nohup one).
    before = signal.signal(signal.SIGHUP, signal.SIG_DFL)
    try:
        with ClassTrainer._signals_stop_at_step_end(trainer):
            os.kill(os.getpid(), sig)
            os.kill(os.getpid(), sig)  # no KeyboardInterrupt: the step finishes and checkpoints
            time.sleep(0.01)
            assert trainer._stop_signal == gentle
            with pytest.raises(KeyboardInterrupt, match="SIGTERM"):
                os.kill(os.getpid(), signal.SIGTERM)  # a user's second signal still stops at once
                time.sleep(0.01)
    finally:
        signal.signal(signal.SIGHUP, before)


def test_under_nohup_the_trainer_leaves_sighup_ignored():
    from mmsr.train.trainer import ClassTrainer

    class Trainer:
        _stop_signal = None

    trainer = Trainer()
    before = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with ClassTrainer._signals_stop_at_step_end(trainer):
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGHUP)
            time.sleep(0.01)
            assert trainer._stop_signal is None
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, before)


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="POSIX hang-ups")
@pytest.mark.parametrize("workers", [1, 2], ids=["one-process", "two-workers"])
@pytest.mark.parametrize("nohup", [False, True], ids=["plain", "nohup"])
def test_a_hangup_stops_the_run_with_checkpoints_unless_started_under_nohup(data_dir, tmp_path, workers, nohup):
    # `nohup mmsr train ... &` and log out: the shell's SIGHUP used to stop a one-process run, whose
    # trainer had replaced nohup's "ignore" with its own handler. Without nohup a hang-up killed a
    # launcher of several workers outright: no summary.
    popen = dict(env=_env(), **(_NOHUP if nohup else _PLAIN))
    if workers == 2:
        process, run_dir = _two_workers(data_dir, tmp_path, "h", **popen)
    else:
        out = tmp_path / "h.safetensors"
        command = [sys.executable, "-m", "mmsr", "train", str(data_dir), "--out", str(out), *TINY, *LONG,
                   "--classes", "1", "--configs", "1-2w8"]  # fmt: skip
        process, run_dir = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, **popen), tmp_path / "h.run"
    classes = list(range(workers))
    with _reaped(process):
        _wait_for_logs(process, run_dir, classes)
        process.send_signal(signal.SIGHUP)
        if nohup:
            logs = [run_dir / "logs" / f"class{k}.jsonl" for k in classes]
            lines = [log.read_text().count("\n") for log in logs]
            assert _until(lambda: all(log.read_text().count("\n") >= n + 5 for log, n in zip(logs, lines)), 30), \
                "training stopped after SIGHUP"
            assert process.poll() is None
            process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    for k in classes:
        assert summary["classes"][k]["status"] == "interrupted"
        state, _ = load_latest(class_dir(run_dir, k))
        assert not state["finished"] and state["step"] >= 2


def _ranks_of(agent: int) -> dict[int, int]:
    """{rank: pid} of the worker processes a torchrun agent started."""
    found = {}
    for pid in Path(f"/proc/{agent}/task/{agent}/children").read_text().split():
        environ = dict(
            item.split(b"=", 1) for item in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0") if b"=" in item
        )
        if b"RANK" in environ:
            found[int(environ[b"RANK"])] = int(pid)
    return found


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="finds the ranks' processes in Linux /proc")
def test_ranks_training_one_class_stop_together_when_one_gets_the_signal(data_dir, tmp_path):
    # Each rank of a DDP group used to stop on its own signal at its own step: a rank that got it
    # left its partner inside an all-reduce, and the class ended failed instead of checkpointed.
    out = tmp_path / "g.safetensors"
    run_dir = tmp_path / "g.run"
    options = [*TINY, *LONG, "--classes", "1", "--configs", "2-2w8", "--log-every", "2"]
    process = subprocess.Popen(_torchrun(2, data_dir, out, *options), stderr=subprocess.PIPE, text=True, env=_env())
    with _reaped(process):
        _wait_for_logs(process, run_dir, [0], lines=3)
        assert _until(lambda: len(_ranks_of(process.pid)) == 2)
        os.kill(_ranks_of(process.pid)[1], signal.SIGINT)  # rank 1 alone, not rank 0 (which writes the summary)
        _, stderr = process.communicate(timeout=90)
    entry = json.loads((run_dir / "summary.json").read_text())["classes"][0]
    assert entry["status"] == "interrupted" and entry["ranks"] == 2, (entry, stderr[-3000:])
    state, path = load_latest(class_dir(run_dir, 0))
    assert not state["finished"] and state["step"] == entry["steps"] and state["step"] % 2 == 0


def test_ctrl_c_while_a_rank_prepares_is_a_note_not_a_traceback(monkeypatch, capsys):
    from mmsr.train import torchrun

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    for name, value in {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(torchrun.dist, "init_process_group", lambda *args, **kwargs: None)
    monkeypatch.setattr(torchrun.dist, "destroy_process_group", lambda: None)
    monkeypatch.setattr(torchrun, "_torchrun_body", interrupted)
    monkeypatch.setattr(torchrun.torch, "set_num_threads", lambda n: None)  # keep this process's threads
    assert torchrun.run_torchrun(_settings()) == 130
    assert "rank 1: interrupted before training; nothing to resume from this rank" in capsys.readouterr().err


def test_torchrun_takes_the_run_lock_as_mmsr_train_does(data_dir, tmp_path):
    # Under torchrun no lock was taken: a second run on the same run directory interleaved its
    # checkpoints and plan with the first one's.
    from mmsr.train.guards import run_lock

    out = tmp_path / "l.safetensors"
    with run_lock(tmp_path / "l.run"):  # a live run holds it
        done = subprocess.run(_torchrun(2, data_dir, out, *TINY), capture_output=True, text=True, timeout=120, env=_env())
    assert done.returncode != 0
    assert f"mmsr: error: run directory {tmp_path / 'l.run'} is in use by another mmsr train (pid {os.getpid()})" in done.stderr
    assert not out.exists() and not (tmp_path / "l.run" / "plan.json").exists()


def test_kill_int_stops_workers_of_a_launcher_started_with_sigint_ignored(data_dir, tmp_path):
    # A background job of a script starts with SIGINT ignored, and Python keeps it so: the launcher
    # of several workers trained on to the end after `kill -INT` (one device stopped).
    process, run_dir = _two_workers(
        data_dir, tmp_path, "bg", preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)
    )
    with _reaped(process):
        _wait_for_logs(process, run_dir, [0, 1])
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr[-3000:]


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="finds the workers in Linux /proc")
def test_a_worker_killed_mid_class_leaves_its_steps_and_checkpoint_in_the_summary(data_dir, tmp_path):
    # A worker that died recorded its class with 0 steps and no checkpoint, though one was on disk.
    process, run_dir = _two_workers(data_dir, tmp_path, "k", "--checkpoint-every", "2", env=_env())
    with _reaped(process):
        _wait_for_logs(process, run_dir, [0, 1], lines=4)
        os.kill(_workers_of(process.pid)[0], signal.SIGKILL)
        time.sleep(1)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=90)
    classes = json.loads((run_dir / "summary.json").read_text())["classes"]
    failed = [c for c in classes if c["status"] == "failed"]
    assert len(failed) == 1 and "died (exit code -9)" in failed[0]["error"], stderr[-3000:]
    state, path = load_latest(class_dir(run_dir, failed[0]["index"]))
    assert failed[0]["steps"] == state["step"] >= 2 and failed[0]["planned_steps"] > failed[0]["steps"]
    assert failed[0]["checkpoint"] == path.relative_to(run_dir).as_posix()
