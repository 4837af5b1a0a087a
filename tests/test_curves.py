"""Curves and the curve CSV: real curves round-trip, every bad input gets a clear error."""

import io
import json
import os
import warnings

import numpy as np
import pytest

from lrtune.curves import Curve, DivergedRunError, read_curves, read_lr_csv, write_curve_csv
from lrtune.datasets import load_mpl


@pytest.fixture(scope="module")
def wsdcon():
    return load_mpl("25M", ["wsdcon_9"])[0]


def _csv(curve: Curve) -> str:
    buf = io.StringIO()
    write_curve_csv(curve, buf)
    return buf.getvalue()


def _lines(curve):
    return _csv(curve).splitlines()


def test_real_curve_round_trips_through_csv_exactly(wsdcon, tmp_path):
    path = tmp_path / "wsdcon.csv"
    write_curve_csv(wsdcon, path)
    (back,) = read_curves(path)
    assert np.array_equal(back.steps, wsdcon.steps)
    assert np.array_equal(back.loss, wsdcon.loss)
    assert np.array_equal(back.lr, wsdcon.lr)
    assert back.lr.size == 16000 and back.loss.size == wsdcon.loss.size


def test_columns_in_any_order_and_extra_columns_are_ignored(wsdcon, tmp_path):
    rows = [r.split(",") for r in _lines(wsdcon)]
    header = ["loss", "note", "lr", "step"]
    out = [",".join(header)] + [",".join([r[3], "x", r[2], r[1]]) for r in rows[1:]]
    path = tmp_path / "shuffled.csv"
    path.write_text("\n".join(out) + "\n")
    (back,) = read_curves(path)
    assert np.array_equal(back.loss, wsdcon.loss) and np.array_equal(back.lr, wsdcon.lr)


def test_run_column_holds_several_runs(tmp_path):
    curves = load_mpl("25M", ["wsdcon_3", "wsdcon_18"])
    path = tmp_path / "two.csv"
    write_curve_csv(curves, path)
    back = read_curves(path)
    assert [c.name for c in back] == ["wsdcon_3", "wsdcon_18"]
    assert back[0].lr[9000] == pytest.approx(3e-5) and back[1].lr[9000] == pytest.approx(1.8e-4)


def test_schedule_gives_the_lr_when_the_file_has_none(wsdcon, tmp_path):
    path = tmp_path / "loss_only.csv"
    path.write_text("step,loss\n" + "".join(f"{s},{v}\n" for s, v in zip(wsdcon.steps, wsdcon.loss)))
    with pytest.raises(ValueError, match="missing column"):
        read_curves(path)
    (back,) = read_curves(path, schedule=wsdcon.meta["spec"])
    assert np.max(np.abs(back.lr - wsdcon.lr) / wsdcon.lr.clip(1e-12)) < 1e-6


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda L: L[:1] + [L[1].rsplit(",", 1)[0] + ",nan"] + L[2:], None),
        (lambda L: [L[0]] + L[2:], "LR is unknown for 1 of steps"),
        (lambda L: [L[0], L[2], L[1]] + L[3:], "sorted"),
        (lambda L: [L[0], L[1], L[1]] + L[2:], "duplicate step"),
        (lambda L: [], "empty"),
        (lambda L: [L[0].replace("lr", "rate")] + L[1:], "missing column.*lr"),
        (lambda L: [L[0]], "no rows"),
        (lambda L: [L[0]] + [L[1].replace("wsdcon_9,1,", "wsdcon_9,1,abc")] + L[2:], "not a number"),
    ],
    ids=["loss-nan-in-lr-only-row", "lr-missing", "unsorted", "duplicate", "empty", "missing-column", "no-rows", "not-a-number"],
)
def test_bad_csv_is_refused_with_a_clear_message(wsdcon, tmp_path, corrupt, message):
    lines = corrupt(_lines(wsdcon))
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(lines) + ("\n" if lines else ""))
    if message is None:  # a NaN 'loss' on a row of step 1, finite losses after it: a missing value
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # NaN is an export's empty cell: read quietly
            (back,) = read_curves(path)
        np.testing.assert_array_equal(back.loss, wsdcon.loss)
        return
    with pytest.raises(ValueError, match=message):
        read_curves(path)


def _with_loss_at(lines, step, value):
    out = []
    for line in lines:
        parts = line.split(",")
        if parts[1] == str(step):
            parts[3] = value
        out.append(",".join(parts))
    return out


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "0", "-1.5"])
def test_non_finite_or_non_positive_loss_is_a_diverged_run(wsdcon, tmp_path, value):
    # a non-positive loss anywhere; non-finite losses to the end of the run (followed by finite
    # ones, they are missing values: test_non_finite_losses_are_missing_values_unless_they_end_the_run)
    lines = _lines(wsdcon)
    for step in (wsdcon.steps[10:] if value in ("nan", "inf", "-inf") else wsdcon.steps[10:11]):
        lines = _with_loss_at(lines, int(step), value)
    path = tmp_path / "diverged.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DivergedRunError, match=r"loss must be finite and > 0"):
        read_curves(path)


def test_negative_lr_is_refused_naming_the_update(wsdcon, tmp_path):
    lines = _lines(wsdcon)
    parts = lines[5].split(",")
    parts[2] = "-0.001"
    lines[5] = ",".join(parts)
    path = tmp_path / "neg.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"lr must be >= 0: .*update 5\) is -0.001"):
        read_curves(path)


def test_api_rejects_each_bad_input_naming_the_field(wsdcon):
    s, l, lr = wsdcon.steps, wsdcon.loss, wsdcon.lr
    with pytest.raises(DivergedRunError, match="loss"):
        Curve(s, np.where(np.arange(s.size) == 3, np.nan, l), lr)
    with pytest.raises(DivergedRunError, match="loss"):
        Curve(s, np.where(np.arange(s.size) == 3, np.inf, l), lr)
    with pytest.raises(DivergedRunError, match="loss"):
        Curve(s, np.where(np.arange(s.size) == 3, 0.0, l), lr)
    with pytest.raises(ValueError, match="lr must be >= 0"):
        Curve(s, l, np.where(np.arange(lr.size) == 7, -1e-4, lr))
    with pytest.raises(ValueError, match="LR is known only for steps 1..14000"):
        Curve(s, l, lr[:14000])
    with pytest.raises(ValueError, match="sorted"):
        Curve(s[::-1], l[::-1], lr)
    with pytest.raises(ValueError, match="duplicate step"):
        Curve(np.r_[s[:1], s], np.r_[l[:1], l], lr)
    with pytest.raises(ValueError, match="different lengths"):
        Curve(s, l[:-1], lr)
    with pytest.raises(ValueError, match="lr is empty"):
        Curve(s, l, [])
    with pytest.raises(ValueError, match="steps is empty"):
        Curve([], [], lr)
    with pytest.raises(ValueError, match=">= 1"):
        Curve(np.r_[0, s], np.r_[5.0, l], lr)


def test_lr_csv_without_losses_gives_the_lr_array(wsdcon, tmp_path):
    path = tmp_path / "lr.csv"
    path.write_text("step,lr\n" + "".join(f"{i + 1},{v!r}\n" for i, v in enumerate(wsdcon.lr.tolist())))
    lr, steps = read_lr_csv(path)
    assert steps is None and np.array_equal(lr, wsdcon.lr)


def test_an_lr_of_zero_everywhere_and_absurd_steps_are_named():
    from lrtune.datasets import load_mpl

    (c,) = load_mpl("25M", ["constant_24000"])
    with pytest.raises(ValueError, match="lr is 0 at every step"):
        Curve(c.steps, c.loss, np.zeros_like(c.lr), name="zero")
    with pytest.raises(ValueError, match="must be step counts, got 1e\\+30"):
        Curve([1e30], c.loss[:1], c.lr, name="big")


def test_a_curve_keeps_its_own_copy_of_the_arrays(wsdcon):
    # one buffer reused for runs at three peak LRs gave three curves at the last peak
    lr_buf, loss_buf = wsdcon.lr.copy(), wsdcon.loss.copy()
    curves = []
    for scale in (1.0, 2.0, 4.0):
        lr_buf[:] = wsdcon.lr * scale
        curves.append(Curve(wsdcon.steps, loss_buf, lr_buf, name=f"x{scale:g}"))
    lr_buf[:] = -1.0
    loss_buf[:] = np.nan
    assert [c.peak_lr for c in curves] == pytest.approx([wsdcon.peak_lr * k for k in (1, 2, 4)])
    assert np.all(curves[0].loss == wsdcon.loss)
    # an array lrtune keeps unchanged (shared_lr: a cached schedule's) is shared, not copied;
    # a user's read-only array is copied (whoever holds it may make it writeable again)
    from lrtune.curves import shared_lr

    fixed = shared_lr(wsdcon.lr.copy())
    assert Curve(wsdcon.steps, wsdcon.loss, fixed).lr is fixed
    mine = wsdcon.lr.copy()
    mine.setflags(write=False)
    assert not np.shares_memory(Curve(wsdcon.steps, wsdcon.loss, mine).lr, mine)
    # a name that is not a string and meta=None are taken as a user means them
    c = Curve(wsdcon.steps, wsdcon.loss, wsdcon.lr, name=7, meta=None)
    assert c.name == "7" and c.meta == {}
    with pytest.raises(ValueError, match="meta must be a dict"):
        Curve(wsdcon.steps, wsdcon.loss, wsdcon.lr, meta=[1])


def test_writing_two_runs_of_one_name_is_refused_and_reading_them_says_why(wsdcon, tmp_path):
    with pytest.raises(ValueError, match="several curves are named 'wsdcon_9'"):
        write_curve_csv([wsdcon, wsdcon], tmp_path / "two.csv")
    text = _csv(wsdcon)
    body = text.split("\n", 1)[1]
    with pytest.raises(ValueError, match="the steps start again: two runs with one name"):
        read_curves(io.StringIO(text + body))


def test_old_mac_line_endings_huge_and_mistyped_steps(wsdcon):
    text = _csv(wsdcon)
    (back,) = read_curves(io.StringIO(text.replace("\n", "\r")))  # CR only
    assert np.array_equal(back.loss, wsdcon.loss) and np.array_equal(back.lr, wsdcon.lr)
    with pytest.raises(ValueError, match="line 3: step 1e30 is far too large"):
        read_curves(io.StringIO("step,lr,loss\n1,0.1,3.0\n1e30,0.1,2.9\n"))
    # a mistyped step of 1e9: the missing LRs are counted without an array of 1e9 floats
    with pytest.raises(ValueError, match=r"the LR is unknown for 999999998 of steps 1..1000000000 \(first: 2\)"):
        read_curves(io.StringIO("step,lr,loss\n1,0.1,3.0\n1000000000,0.1,2.9\n"))


def test_bundled_loaders_refuse_misspelt_columns_and_take_one_name():
    from lrtune.datasets import load_schaipp

    with pytest.raises(ValueError, match="unknown Schaipp column"):
        load_schaipp(shedule="wsd")  # selected nothing, silently
    (c,) = load_mpl("25M", "cosine_24000")  # one name, not its letters
    assert c.name == "cosine_24000"
    with pytest.raises(ValueError, match="no loss at or before max_step=1000"):
        load_mpl("25M", ["cosine_24000"], max_step=1000)


def test_the_schaipp_data_is_found_from_an_installed_package_run_in_the_checkout(tmp_path, monkeypatch):
    import lrtune.datasets as ds

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    monkeypatch.delenv("LRTUNE_SCHAIPP_DATA", raising=False)
    # an installed (not editable) package: no benchmarks folder beside it
    monkeypatch.setattr(ds, "_HERE", str(tmp_path / "site-packages" / "lrtune" / "datasets"))
    monkeypatch.chdir(root)  # where the benchmarks are run from
    assert ds._default_schaipp_root() == os.path.join(root, "benchmarks", "data", "schaipp")
    assert len(ds.schaipp_runs(ds._default_schaipp_root())) > 100
    monkeypatch.chdir(tmp_path)  # anywhere else: the error says where the data lives
    with pytest.raises(ValueError, match="ships in lrtune's source tree as benchmarks/data/schaipp: run from the "
                                         "checkout's root, set LRTUNE_SCHAIPP_DATA"):
        ds.schaipp_runs()


@pytest.mark.parametrize("sep, what", [(";", "semicolons"), ("\t", "tabs")])
def test_a_file_with_another_separator_is_named_as_such(sep, what):
    text = sep.join(["step", "lr", "loss"]) + "\n" + sep.join(["1", "0.1", "3.0"]) + "\n"
    with pytest.raises(ValueError, match=f"separated by {what}: lrtune reads comma-separated files"):
        read_curves(io.StringIO(text))


def test_a_file_without_an_lr_column_is_told_about_the_schedule():
    with pytest.raises(ValueError, match=r"missing column.s. lr; .* needs its schedule \(--schedule SPEC"):
        read_curves(io.StringIO("step,loss\n1,3.0\n2,2.9\n"))


def test_a_loggers_rows_split_over_one_step_are_read_as_one(wsdcon):
    # a Lightning CSVLogger-like export: at each step a training row, an LR row of its own,
    # and at evaluation steps a validation row, each leaving the others' columns empty
    loss_at = dict(zip(wsdcon.steps.tolist(), wsdcon.loss.tolist()))
    lines = ["epoch,step,train_loss,val_loss,lr-AdamW"]
    for s in range(1, wsdcon.horizon + 1):
        lines.append(f"0,{s},{loss_at.get(s, 4.0) + 0.05!r},,")
        lines.append(f"0,{s},,,{float(wsdcon.lr[s - 1])!r}")
        if s in loss_at:
            lines.append(f"0,{s},,{loss_at[s]!r},")
    text = "\n".join(lines)
    (back,) = read_curves(io.StringIO(text), columns={"loss": "val_loss", "lr": "lr-AdamW"})
    np.testing.assert_array_equal(back.steps, wsdcon.steps)
    np.testing.assert_array_equal(back.loss, wsdcon.loss)
    np.testing.assert_array_equal(back.lr, wsdcon.lr)
    # the training loss instead: its rows at loss steps carry a loss while the validation row
    # carries another one of the same step, but the validation column is not read then
    (train,) = read_curves(io.StringIO(text), columns={"loss": "train_loss", "lr": "lr-AdamW"})
    assert train.steps.size == wsdcon.horizon and train.loss[wsdcon.steps[0] - 1] == loss_at[wsdcon.steps[0]] + 0.05
    # two rows that both give a step's loss (a resumed run logging a step again) stay a duplicate
    s0 = int(wsdcon.steps[0])
    twice = text.replace(f"\n0,{s0},,{loss_at[s0]!r},", f"\n0,{s0},,{loss_at[s0]!r},\n0,{s0},,{loss_at[s0] + 0.1!r},")
    with pytest.raises(ValueError, match=f"duplicate step {s0} \\(two rows give its lr or its loss\\)"):
        read_curves(io.StringIO(twice), columns={"loss": "val_loss", "lr": "lr-AdamW"})


def test_non_finite_losses_are_missing_values_unless_they_end_the_run(wsdcon):
    lines = _lines(wsdcon)
    loss_rows = [i for i, line in enumerate(lines) if i and line.split(",")[3]]
    mid = list(lines)
    for i, marker in zip(loss_rows[5:8], ("NaN", "inf", "nan")):  # an export's NaN marker, an fp16 overflow
        parts = mid[i].split(",")
        parts[3] = marker
        mid[i] = ",".join(parts)
    with pytest.warns(UserWarning, match="1 infinite loss\\(es\\) with finite losses after them \\(first at step "
                      f"{wsdcon.steps[6]}\\) read as missing values"):
        (back,) = read_curves(io.StringIO("\n".join(mid)))
    np.testing.assert_array_equal(back.loss, np.delete(wsdcon.loss, [5, 6, 7]))
    # losses that stay NaN to the end: a diverged run, named at its first NaN
    end = list(lines)
    for i in loss_rows[-4:]:
        parts = end[i].split(",")
        parts[3] = "nan"
        end[i] = ",".join(parts)
    with pytest.raises(DivergedRunError, match=f"at step {wsdcon.steps[-4]} it is nan"):
        read_curves(io.StringIO("\n".join(end)))
    (cut,) = read_curves(io.StringIO("\n".join(end)), diverged="cut")
    assert cut.meta["diverged_at"] == wsdcon.steps[-4] and cut.steps[-1] == wsdcon.steps[-5]
    # a sparse column with NaN where a row has no value (a W&B export): train and eval rows at one step
    text = ["step,lr,train/loss,val/loss"]
    loss_at = dict(zip(wsdcon.steps.tolist(), wsdcon.loss.tolist()))
    end = int(wsdcon.steps[-1]) + 100  # training rows (NaN in val/loss) after the last evaluation
    for s in range(1, end + 1):
        text.append(f"{s},{float(wsdcon.lr[s - 1])!r},4.0,NaN")
        if s in loss_at:
            text.append(f"{s},NaN,NaN,{loss_at[s]!r}")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the NaN markers of other rows are no missing losses of the run
        (wb,) = read_curves(io.StringIO("\n".join(text)), columns={"loss": "val/loss"})
    np.testing.assert_array_equal(wb.loss, wsdcon.loss)
    np.testing.assert_array_equal(wb.lr, wsdcon.lr[:end])
    # NaN for a long stretch after the last finite loss: a divergence, also in such a file
    last = int(wsdcon.steps[wsdcon.steps <= 9000][-1])
    diverged = [line if line.split(",")[1] != "NaN" or int(line.split(",")[0]) <= 9000 else
                line.rsplit(",", 1)[0] + ",NaN" for line in text]  # evaluations give NaN after step 9000
    with pytest.raises(DivergedRunError, match=f"at step {last + 1} it is nan"):
        read_curves(io.StringIO("\n".join(diverged)), columns={"loss": "val/loss"})
    # ... also when the NaN evaluations are only the last two of the run
    final = int(wsdcon.steps[-3])  # the evaluations after it give NaN
    late = [line if line.split(",")[1] != "NaN" or int(line.split(",")[0]) <= final else
            line.rsplit(",", 1)[0] + ",NaN" for line in text]
    (cut,) = read_curves(io.StringIO("\n".join(late)), columns={"loss": "val/loss"}, diverged="cut")
    assert cut.steps[-1] == final and cut.meta["diverged_at"] == final + 1


def test_a_logger_recording_the_next_updates_lr_is_named(wsdcon):
    # Hugging Face's Trainer logs at step s the LR the scheduler set for update s + 1
    loss_at = dict(zip(wsdcon.steps.tolist(), wsdcon.loss.tolist()))
    rows = ["step,learning_rate,eval_loss"]
    for s in range(50, wsdcon.horizon, 50):  # logging_steps=50: the LR is known every 50 steps only
        rows.append(f"{s},{float(wsdcon.lr[s])!r},{loss_at.get(s, '')}")
    for s in wsdcon.steps:
        if s % 50:
            rows.append(f"{s},,{loss_at[s]!r}")
    text = "\n".join([rows[0]] + sorted(rows[1:], key=lambda r: int(r.split(",")[0])))
    columns = {"lr": "learning_rate", "loss": "eval_loss"}
    with pytest.warns(UserWarning, match="the file's lr at step s is the schedule's LR of update s \\+ 1"):
        (back,) = read_curves(io.StringIO(text), schedule=wsdcon.meta["spec"], columns=columns)
    np.testing.assert_array_equal(back.loss, wsdcon.loss)
    np.testing.assert_allclose(back.lr, wsdcon.lr, rtol=1e-6)
    # a schedule that is not the file's, shifted or not, is still refused
    other = wsdcon.meta["spec"].replace("peak=0.0003", "peak=0.0004")
    assert other != wsdcon.meta["spec"]
    with pytest.raises(ValueError, match="the file's lr at step 50 is"):
        read_curves(io.StringIO(text), schedule=other, columns=columns)
    # a file that agrees with a schedule everywhere but at its last step is no shifted logger: refused
    constant = "\n".join(["step,lr,loss"] + [f"{s},{1e-3 if s % 100 == 0 else ''},{3.0 - s / 1000 if s % 20 == 0 else ''}"
                                              for s in range(1, 801)])
    with pytest.raises(ValueError, match="the file's lr at step 800 is 0.001 but the schedule gives"):
        read_curves(io.StringIO(constant), schedule="wsd:steps=800,peak=0.001,warmup=20,cooldown=0.05")
    # logged at every step, one step early: only the last step lacks an LR, and the message says why
    dense = ["step,lr,loss"] + [f"{s},{float(wsdcon.lr[s])!r},{loss_at.get(s, '')}" for s in range(0, wsdcon.horizon)]
    dense.append(f"{wsdcon.horizon},,{loss_at.get(wsdcon.horizon, 3.0)}")
    with pytest.raises(ValueError, match="only the last step lacks one: a logger that records the LR of the next"):
        read_curves(io.StringIO("\n".join(dense)))


def test_a_hugging_face_trainer_state_json_is_read_with_its_schedule(tmp_path):
    (c,) = load_mpl("25M", ["cosine_24000"])
    loss_at = dict(zip(c.steps.tolist(), c.loss.tolist()))
    history = []  # logging_steps=50 (training loss, grad norm, the next update's LR), evaluation as in the data
    for s in range(1, c.horizon + 1):
        if s % 50 == 0:  # at the last step (logging_steps divides max_steps) the LR of an update never run: 0
            history.append({"loss": round(loss_at.get(s, c.loss[0]) * 1.01, 4), "grad_norm": 0.3,
                            "learning_rate": float(c.lr[s]) if s < c.horizon else 0.0, "epoch": s / 1000, "step": s})
        if s in loss_at:
            history.append({"eval_loss": loss_at[s], "eval_runtime": 1.5, "epoch": s / 1000, "step": s})
    path = tmp_path / "my-run" / "checkpoint-24000" / "trainer_state.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"global_step": c.horizon, "log_history": history}))
    with pytest.raises(ValueError, match="does not log every update.s LR .*: give the run.s schedule"):
        read_curves(path)
    (back,) = read_curves(path, schedule=c.meta["spec"])  # the logged LRs agree with it, one update later
    assert back.name == "my-run"
    np.testing.assert_array_equal(back.steps, c.steps)
    np.testing.assert_array_equal(back.loss, c.loss)  # eval_loss where the log has it
    (train,) = read_curves(path, schedule=c.meta["spec"], columns={"loss": "loss"})
    assert train.steps[0] == 50 and train.steps[-1] == c.horizon and train.steps.size == c.horizon // 50
    wrong = c.meta["spec"].replace("min=0.1", "min=0.2")
    with pytest.raises(ValueError, match=r"the file.s lr at step \d+ is .* but the schedule gives"):
        read_curves(path, schedule=wrong)
    other = tmp_path / "config.json"
    other.write_text('{"lr": 0.001}')
    with pytest.raises(ValueError, match="a JSON file, not a CSV.*no 'log_history' list"):
        read_curves(other)
