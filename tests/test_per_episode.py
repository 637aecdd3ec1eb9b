"""Per-episode values: written beside the record with its SHA-256, loaded checked, paired between runs."""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import fewshot_config

from harness import hookimpl, per_episode
from harness.episodes import EpisodeBatch, EpisodeKind, Prediction
from harness.errors import DataError, HarnessError
from harness.runner import run
from harness.specs import MetricSpec, mean_ci95

QUIET = {"log": lambda _: None}


def test_a_record_refers_to_its_per_episode_values(protonet_host, tmp_path):
    record = run(fewshot_config(), protonet_host, tmp_path, name="r", **QUIET)
    data = (tmp_path / "r" / "episodes.npz").read_bytes()
    assert record["per_episode"] == {"file": "episodes.npz", "sha256": hashlib.sha256(data).hexdigest()}
    values = per_episode.load(tmp_path / "r")
    assert values.episodes.tolist() == list(range(64))
    assert {m: set(keys) for m, keys in values.values.items()} == {m: set(k) for m, k in record["metrics"].items()}
    for metric, keys in values.values.items():
        for key, column in keys.items():
            assert column.shape == (64,) and mean_ci95(column).as_dict() == record["metrics"][metric][key]
    again = run(fewshot_config(), protonet_host, tmp_path, name="again", **QUIET)
    assert again["per_episode"] == record["per_episode"], "the same values give the same bytes"


def test_a_changed_or_missing_per_episode_file_is_refused_in_one_line_naming_a_fix_that_works(protonet_host, tmp_path):
    record = run(fewshot_config(), protonet_host, tmp_path, name="r", **QUIET)
    path, record_path = tmp_path / "r" / "episodes.npz", tmp_path / "r" / "record.json"
    fix = (
        f"delete {record_path} and rerun its command: it carries on from the run's checkpoint (tests it again, without "
        "training, if finished) "
        "(or pass --restart to train it again)"
    )
    values = per_episode.load(tmp_path / "r")
    values.values["accuracy"]["accuracy"][0] = 1.0 - values.values["accuracy"]["accuracy"][0]
    path.write_bytes(values.encode())
    with pytest.raises(DataError) as caught:
        per_episode.load(tmp_path / "r")
    assert str(caught.value) == f"{path} does not match the SHA-256 in {record_path}: it was changed or damaged; {fix}"
    path.unlink()
    with pytest.raises(
        DataError, match=r"episodes.npz is missing but \S+ refers to it; delete \S+record.json and rerun"
    ):
        per_episode.load(tmp_path / "r")
    record_path.unlink()
    assert run(fewshot_config(), protonet_host, tmp_path, name="r", **QUIET)["per_episode"] == record["per_episode"]
    assert per_episode.load(tmp_path / "r").episodes.tolist() == list(range(64)), "the fix the message names works"
    damaged = json.loads(record_path.read_text())
    damaged["per_episode"]["file"] = "../elsewhere.npz"
    record_path.write_text(json.dumps(damaged))
    with pytest.raises(DataError, match=r"\(per_episode does not name a file beside it and its SHA-256\); delete "):
        per_episode.load(tmp_path / "r")


def crafted(members: dict[str, bytes], compress_type: int = zipfile.ZIP_DEFLATED, flags: int = 0) -> bytes:
    """A zip of ``members`` whose entries may claim another compression or flags (as a forger's could)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    raw = bytearray(buffer.getvalue())
    for offset in [i for i in range(len(raw) - 4) if raw[i : i + 4] in (b"PK\x03\x04", b"PK\x01\x02")]:
        central = raw[offset : offset + 4] == b"PK\x01\x02"
        raw[offset + (8 if central else 6) : offset + (10 if central else 8)] = flags.to_bytes(2, "little")
        raw[offset + (10 if central else 8) : offset + (12 if central else 10)] = compress_type.to_bytes(2, "little")
    return bytes(raw)


def npy(array: np.ndarray, shape: tuple[int, ...] | None = None) -> bytes:
    """``array`` as .npy bytes, its header claiming ``shape`` where given."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": "<f8", "fortran_order": False, "shape": shape or array.shape}
    )
    return buffer.getvalue() + array.astype("<f8").tobytes()


def saved(array: np.ndarray) -> bytes:
    """``array`` as ``np.save`` writes it."""
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (crafted({"episodes.npy": npy(np.arange(4.0)), "m/k.npy": npy(np.zeros(4), (10**12,))}), "header claims more"),
        (crafted({"episodes.npy": npy(np.arange(4.0)), "m/k.npy": npy(np.zeros(4))}, compress_type=99), "not a valid"),
        (crafted({"episodes.npy": npy(np.arange(4.0)), "m/k.npy": npy(np.zeros(4))}, flags=1), "not a valid .npz"),
        (
            crafted({"episodes.npy": npy(np.arange(4.0)), "m/k.npy": saved(np.zeros(4, dtype=complex))}),
            "lacks the values",
        ),
        (b"PK\x05\x06" + bytes(18), "lacks the episode indices"),
    ],
    ids=["a header claiming a trillion values", "an unknown compression", "encrypted", "complex values", "empty"],
)
def test_a_crafted_per_episode_file_is_refused_in_one_line(tmp_path, data, problem):
    with pytest.raises(DataError) as caught:
        per_episode.decode(data, {"m": {"k": {}}}, tmp_path / "e.npz", "delete it")
    assert problem in str(caught.value) and str(caught.value).endswith("; delete it"), str(caught.value)


def test_members_a_record_does_not_report_are_never_read(tmp_path):
    bomb = crafted({"episodes.npy": npy(np.arange(4.0)), "m/k.npy": npy(np.ones(4)), "x.npy": bytes(2**26)})
    assert len(bomb) < 2**20  # 64 MiB of zeros, deflated
    values = per_episode.decode(bomb, {"m": {"k": {}}}, tmp_path / "e.npz", "")
    assert values.values["m"]["k"].tolist() == [1.0] * 4


def test_two_runs_pair_up_on_the_same_episodes(protonet_host, tmp_path):
    run(fewshot_config(), protonet_host, tmp_path, name="a", **QUIET)
    run(fewshot_config(seed=3, params={"lr": 1.0}), protonet_host, tmp_path, name="b", **QUIET)
    a, b = per_episode.load(tmp_path / "a"), per_episode.load(tmp_path / "b")
    assert (a.episodes == b.episodes).all()
    difference = mean_ci95(a.values["accuracy"]["accuracy"] - b.values["accuracy"]["accuracy"])
    means = a.values["accuracy"]["accuracy"].mean() - b.values["accuracy"]["accuracy"].mean()
    assert difference.n == 64 and difference.mean == pytest.approx(means) and difference.ci95 > 0


def wrong_shape(batch: EpisodeBatch, prediction: Prediction) -> dict[str, np.ndarray]:
    """One value for the whole batch instead of one per episode."""
    return {"mean": np.asarray((prediction.labels == batch.targets).mean())}


class WrongShapeMetric:
    @hookimpl
    def harness_metrics(self) -> list[MetricSpec]:
        return [MetricSpec("batch_mean", "wrong", True, (EpisodeKind.FEWSHOT,), wrong_shape)]


def test_a_metric_must_give_one_value_per_episode(protonet_host, tmp_path):
    protonet_host.register(WrongShapeMetric(), "wrong-shape")
    message = r"^metric 'batch_mean' \(plugin 'wrong-shape'\) returned values of shape \(\) for key 'mean', "
    with pytest.raises(HarnessError, match=message):
        run(fewshot_config(metrics=["batch_mean"], episodes=0), protonet_host, tmp_path, **QUIET)


def test_evaluate_writes_the_same_per_episode_values_as_the_run(protonet_host, tmp_path):
    from harness.checkpoint_eval import evaluate_checkpoint

    record = run(fewshot_config(), protonet_host, tmp_path, name="r", **QUIET)
    out = tmp_path / "evaluated.npz"
    result = evaluate_checkpoint(tmp_path / "r" / "checkpoint.pkl", protonet_host, episodes_out=out)
    assert result["per_episode"] == {"file": str(out), "sha256": record["per_episode"]["sha256"]}
    assert out.read_bytes() == (tmp_path / "r" / "episodes.npz").read_bytes()
    with np.load(out, allow_pickle=False) as loaded:
        assert loaded["episodes"].tolist() == list(range(64))


def test_a_bad_episodes_out_is_refused_before_any_work(protonet_host, tmp_path):
    from harness.checkpoint_eval import evaluate_checkpoint

    run(fewshot_config(), protonet_host, tmp_path, name="r", **QUIET)
    checkpoint = tmp_path / "r" / "checkpoint.pkl"
    with pytest.raises(HarnessError, match=r"--episodes-out .* is a folder; pass a file name") as info:
        evaluate_checkpoint(checkpoint, protonet_host, episodes_out=tmp_path / "r")
    assert "\n" not in str(info.value)
    suggested = Path(str(info.value).rsplit("e.g. ", 1)[1])  # a run's folder: the name it suggests is no run file
    evaluate_checkpoint(checkpoint, protonet_host, episodes_out=suggested)
    assert suggested.is_file()
    with pytest.raises(HarnessError, match=r"the folder .*nowhere does not exist; create it first"):
        evaluate_checkpoint(checkpoint, protonet_host, episodes_out=tmp_path / "nowhere" / "e.npz")
    os.mkfifo(tmp_path / "fifo.npz")  # refused unopened: opening a FIFO waits for a writer that never comes
    with pytest.raises(HarnessError, match="would replace a file that is not one --episodes-out wrote"):
        evaluate_checkpoint(checkpoint, protonet_host, episodes_out=tmp_path / "fifo.npz")


def test_episodes_out_never_replaces_a_runs_files_or_a_file_it_did_not_write(protonet_host, tmp_path):
    from harness.checkpoint_eval import evaluate_checkpoint

    run(fewshot_config(), protonet_host, tmp_path, name="r", **QUIET)
    checkpoint = tmp_path / "r" / "checkpoint.pkl"
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    kept = {path: path.read_bytes() for path in [*(tmp_path / "r").iterdir(), notes]}
    refused = r"(would replace a file that is not one --episodes-out wrote|is the name of a run's own file); give a"
    for target in kept:  # record.json was overwritten with the values before
        with pytest.raises(HarnessError, match=refused):
            evaluate_checkpoint(checkpoint, protonet_host, episodes_out=target)
    assert {path: path.read_bytes() for path in kept} == kept
    again = tmp_path / "evaluated.npz"
    evaluate_checkpoint(checkpoint, protonet_host, episodes_out=again)
    evaluate_checkpoint(checkpoint, protonet_host, episodes_out=again)  # its own earlier file: replaced
    assert again.read_bytes() == (tmp_path / "r" / "episodes.npz").read_bytes()
    (tmp_path / "r" / "record.json").unlink()  # the fix for a damaged record: the checkpoint still makes it a run
    for name in ("episodes.npz", "record.json"):  # nor does it write a run's file that is not there
        with pytest.raises(HarnessError, match=r"is the name of a run's own file; give another file name"):
            evaluate_checkpoint(checkpoint, protonet_host, episodes_out=tmp_path / "r" / name)
    assert not (tmp_path / "r" / "record.json").exists()
