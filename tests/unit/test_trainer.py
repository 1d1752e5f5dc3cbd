"""Trainer: determinism, best-epoch selection, early stopping, exact resume after an interruption."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medai.data import Dataset, Schema
from medai.engine.trainer import Trainer, TrainerConfig, resolve_device
from medai.errors import InvalidInputError
from medai.models import NETWORKS, Classifier
from medai.transforms.image import RandomAffine
from tests.conftest import make_images


def _data(n: int, seed: int) -> Dataset:
    images, labels = make_images(n, 16, seed)
    schema = Schema("image", "binary", ("right", "left"), (1, 16, 16))
    return Dataset(images[:, None].astype(np.float32) / 255, labels, np.arange(n), schema)


def _model(seed: int = 0) -> Classifier:
    torch.manual_seed(seed)
    return Classifier(NETWORKS.create("compact_cnn", image_size=16, width=4), "image", [0.2], [0.3])


def _accuracy(logits, labels):
    return {"accuracy": float((logits.argmax(1) == labels).mean())}


def _fit(epochs=4, checkpoint_dir=None, metric_fn=_accuracy, **config):
    trainer = Trainer(
        TrainerConfig(max_epochs=epochs, batch_size=8, monitor="accuracy", progress=False, **config),
        train_transform=RandomAffine(),
        metric_fn=metric_fn,
        checkpoint_dir=checkpoint_dir,
    )
    model = _model()
    result = trainer.fit(model, _data(40, 0), _data(16, 1))
    return model, result


def test_same_seed_gives_identical_weights_and_history():
    model_a, result_a = _fit()
    model_b, result_b = _fit()
    assert result_a.history == result_b.history
    for (name, a), b in zip(model_a.state_dict().items(), model_b.state_dict().values()):
        assert torch.equal(a, b), name


def test_other_seed_gives_other_weights():
    model_a, _ = _fit(seed=0)
    model_b, _ = _fit(seed=1)
    assert not all(torch.equal(a, b) for a, b in zip(model_a.state_dict().values(), model_b.state_dict().values()))


def test_learns_the_synthetic_task_and_keeps_the_best_epoch():
    _, result = _fit(epochs=8)
    scores = [h["val_accuracy"] for h in result.history]
    assert result.best_score == max(scores) and result.best_epoch == scores.index(max(scores))
    assert result.best_score >= 0.8
    assert result.samples_per_second > 0 and result.train_samples == 8 * 40


def test_early_stopping_stops_after_patience():
    calls = []

    def flat(logits, labels):
        calls.append(1)
        return {"accuracy": 0.5}

    _, result = _fit(epochs=10, metric_fn=flat, patience=2)
    assert result.stopped_early and len(result.history) == 3 and result.best_epoch == 0


def test_resume_after_interruption_gives_the_uninterrupted_result(tmp_path):
    reference, reference_result = _fit(epochs=4)
    calls = {"n": 0}

    def interrupt_third_epoch(logits, labels):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return _accuracy(logits, labels)

    with pytest.raises(KeyboardInterrupt):
        _fit(epochs=4, checkpoint_dir=tmp_path / "ckpt", metric_fn=interrupt_third_epoch)
    assert (tmp_path / "ckpt" / "state.safetensors").exists()
    resumed, result = _fit(epochs=4, checkpoint_dir=tmp_path / "ckpt")
    assert result.resumed_from_epoch == 2
    assert [h["val_accuracy"] for h in result.history] == [h["val_accuracy"] for h in reference_result.history]
    for a, b in zip(reference.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)


def test_resume_refuses_a_checkpoint_with_other_settings(tmp_path):
    _fit(epochs=2, checkpoint_dir=tmp_path / "ckpt")
    with pytest.raises(InvalidInputError, match="other settings"):
        _fit(epochs=3, checkpoint_dir=tmp_path / "ckpt")


def test_resume_refuses_a_checkpoint_written_on_other_data(tmp_path):
    _fit(epochs=2, checkpoint_dir=tmp_path / "ckpt")
    trainer = Trainer(TrainerConfig(max_epochs=2, batch_size=8, monitor="accuracy", progress=False),
                      metric_fn=_accuracy, checkpoint_dir=tmp_path / "ckpt")  # fmt: skip
    with pytest.raises(InvalidInputError, match="train_samples"):  # e.g. cross-fitted members after a shared split
        trainer.fit(_model(), _data(32, 0), _data(16, 1))


def test_checkpoints_contain_no_pickle(tmp_path):
    _fit(epochs=1, checkpoint_dir=tmp_path / "ckpt")
    names = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert names == ["state.json", "state.safetensors"]


@pytest.mark.parametrize("bad", [{"max_epochs": 0}, {"batch_size": -1}, {"learning_rate": 0.0}, {"patience": 0}])
def test_invalid_settings_are_named(bad):
    with pytest.raises(InvalidInputError, match=next(iter(bad))):
        TrainerConfig(**bad).validate()


def test_device_selection():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(InvalidInputError, match="Did you mean 'cuda'"):
        resolve_device("cdua")
    if not torch.cuda.is_available():
        with pytest.raises(InvalidInputError, match="CUDA is not available"):
            resolve_device("cuda")


def test_monitor_must_be_a_computed_metric():
    trainer = Trainer(TrainerConfig(max_epochs=1, batch_size=8, monitor="auroc", progress=False))
    with pytest.raises(InvalidInputError, match="'auroc' is not computed"):
        trainer.fit(_model(), _data(16, 0), _data(8, 1))


class _Collated:
    """The same samples as a Dataset, served through ``collate`` (the path variable-size graphs take)."""

    def __init__(self, data: Dataset):
        self.tensors, self.labels = data.tensors(), data.labels

    def __len__(self) -> int:
        return len(self.labels)

    def collate(self, indices: np.ndarray) -> dict:
        index = torch.as_tensor(indices, dtype=torch.long)
        return {k: v[index] for k, v in self.tensors.items()}


def test_collated_datasets_train_exactly_like_in_memory_tensors():
    config = TrainerConfig(max_epochs=3, batch_size=8, monitor="accuracy", progress=False)
    train, val = _data(40, 0), _data(16, 1)
    results = []
    for wrap in (lambda d: d, _Collated):
        model = _model()
        result = Trainer(config, metric_fn=_accuracy).fit(model, wrap(train), wrap(val))
        logits = Trainer(config).predict(model, wrap(_data(21, 2)))
        results.append((result.history, model.state_dict(), logits))
    assert results[0][0] == results[1][0]
    assert all(torch.equal(a, b) for a, b in zip(results[0][1].values(), results[1][1].values()))
    assert np.array_equal(results[0][2], results[1][2]) and results[0][2].shape == (21, 2)


def test_collated_prediction_does_not_depend_on_batch_mates():
    model = _model().eval()
    data = _Collated(_data(20, 3))
    whole = Trainer(TrainerConfig(progress=False, eval_batch_size=8)).predict(model, data)
    alone = Trainer(TrainerConfig(progress=False, eval_batch_size=8)).predict(model, _Collated(_data(20, 3)))
    assert np.array_equal(whole, alone)
    data.labels = data.labels[:5]
    data.tensors = {k: v[:5] for k, v in data.tensors.items()}
    assert np.array_equal(Trainer(TrainerConfig(progress=False, eval_batch_size=8)).predict(model, data), whole[:5])


class _BatchMean(torch.nn.Module):
    """Outputs that depend on the batch: each row minus the batch mean (what a padded fixed chunk guards against)."""

    def forward(self, batch):
        x = batch["image"].flatten(1)[:, :2]
        return {"logits": x - x.mean(0, keepdim=True)}


def test_batch_invariant_sizes_keeps_only_sizes_with_identical_outputs():
    from medai.engine.trainer import batch_invariant_sizes

    batch = {"image": torch.rand(8, 1, 16, 16, generator=torch.Generator().manual_seed(0))}
    assert batch_invariant_sizes(_BatchMean(), batch, (1, 2, 4)) == ()
    sizes = batch_invariant_sizes(_model().eval(), batch, (1, 2, 4, 16))  # 16 > the batch: never kept
    assert 16 not in sizes and set(sizes) <= {1, 2, 4}
    model = _model().eval()
    with torch.no_grad():
        full = model(batch)["logits"]
        for n in sizes:
            assert torch.equal(model({"image": batch["image"][:n]})["logits"], full[:n])


def test_short_last_chunk_is_padded_to_the_smallest_allowed_size():
    calls = []

    class Recording(torch.nn.Module):
        def forward(self, batch):
            calls.append(len(batch["image"]))
            return {"logits": batch["image"].flatten(1)[:, :2] * 2}

    data = _data(11, 0)
    logits = Trainer(TrainerConfig(progress=False, eval_batch_size=8, eval_pad_sizes=(2, 4))).predict(Recording(), data)
    assert calls == [8, 4] and logits.shape == (11, 2)  # 8 + 3 padded to 4, not to 8
    calls.clear()
    Trainer(TrainerConfig(progress=False, eval_batch_size=8, eval_pad_sizes=(2, 4))).predict(Recording(), _data(1, 0))
    assert calls == [2]
    calls.clear()
    Trainer(TrainerConfig(progress=False, eval_batch_size=8)).predict(Recording(), _data(3, 0))
    assert calls == [8]
    with pytest.raises(InvalidInputError, match="eval_pad_sizes"):
        TrainerConfig(eval_pad_sizes=(0,)).validate()
    model = _model().eval()  # with sizes the model was checked at, the outputs are those of fixed chunks
    from medai.engine.trainer import batch_invariant_sizes

    sizes = batch_invariant_sizes(model, {"image": torch.from_numpy(_data(8, 3).inputs)}, (1, 2, 4))
    for n in (1, 3, 5, 11):
        fixed = Trainer(TrainerConfig(progress=False, eval_batch_size=8)).predict(model, _data(n, 4))
        smaller = Trainer(TrainerConfig(progress=False, eval_batch_size=8, eval_pad_sizes=sizes)).predict(model, _data(n, 4))
        assert np.array_equal(fixed, smaller)
