"""DeepDTA parts: padding never changes an encoding, batch layouts agree, training rows hold the right pairs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medai.chem.dta import AffinityData
from medai.errors import InvalidInputError
from medai.models import NETWORKS
from medai.models.affinity import AffinityModel, SequenceCNN
from medai.tasks.affinity_data import DrugPanel, protein_rows


def small_model() -> AffinityModel:
    torch.manual_seed(0)
    network = NETWORKS.create("deepdta", embedding_dim=8, filters=[4, 6, 8], hidden=[16, 8])
    return AffinityModel(network, target_mean=6.0, target_std=0.5).eval()


def test_encoding_ignores_padding_and_batch_mates():
    torch.manual_seed(0)
    encoder = SequenceCNN(26, embedding_dim=8, filters=(4, 6, 8), kernels=(4, 8, 12))
    short = torch.randint(1, 26, (1, 30))
    long = torch.randint(1, 26, (1, 300))
    alone = encoder(short)
    padded = torch.cat([short, torch.zeros(1, 500, dtype=torch.long)], dim=1)
    with_long = torch.cat([padded[:, :300], long])  # batched with a longer sequence
    assert torch.allclose(encoder(padded), alone, atol=1e-6)
    assert torch.allclose(encoder(with_long)[0], alone[0], atol=1e-6)
    tiny = torch.tensor([[5, 0, 0]])  # shorter than the receptive field: still one pooled position
    assert encoder(tiny).shape == (1, 8)


def test_first_layer_tables_match_the_convolution_in_values_and_gradients():
    torch.manual_seed(0)
    encoder = SequenceCNN(26, embedding_dim=8, filters=(4, 6, 8), kernels=(4, 8, 12))
    codes = torch.randint(1, 26, (3, 40))
    codes[1, 25:] = 0
    by_tables = encoder.encode_codes(codes)
    by_tables.square().sum().backward()
    table_grads = [p.grad.clone() for p in encoder.parameters()]
    encoder.zero_grad()
    by_convolution = encoder.encode_embedded(*encoder.embed(codes))
    by_convolution.square().sum().backward()
    assert torch.allclose(by_tables, by_convolution, atol=1e-5)
    for table_grad, parameter in zip(table_grads, encoder.parameters()):
        assert torch.allclose(table_grad, parameter.grad, atol=1e-4)
    assert not encoder.embedding.weight.grad[0].any()  # the padding embedding stays zero


def test_pair_layouts_agree_and_missing_targets_are_ignored():
    model = small_model()
    drugs, proteins = torch.randint(1, 95, (2, 15)), torch.randint(1, 26, (3, 40))
    pair_drug, pair_protein = torch.tensor([0, 1, 1, 0]), torch.tensor([2, 0, 1, 2])
    indexed = model({"drug": drugs, "protein": proteins, "pair_drug": pair_drug, "pair_protein": pair_protein})
    rows = model({"drug": drugs[pair_drug], "protein": proteins[pair_protein]})  # one row per pair, deduplicated
    assert torch.allclose(indexed["logits"], rows["logits"], atol=1e-6) and rows["logits"].shape == (4, 1)
    labels = torch.tensor([6.5, float("nan"), 5.0, float("nan")])
    loss = model({"drug": drugs[pair_drug], "protein": proteins[pair_protein], "label": labels})["loss"]
    scaled = (rows["logits"][:, 0] - 6.0) / 0.5 - (labels - 6.0) / 0.5
    assert torch.allclose(loss, scaled[[0, 2]].square().mean(), atol=1e-5)
    with pytest.raises(InvalidInputError, match="one row per pair"):
        model({"drug": drugs, "protein": proteins})


def test_training_rows_turn_into_the_measured_pairs_of_their_proteins():
    data = AffinityData(
        drug_ids=["d0", "d1", "d2"], drug_smiles=["C", "CC", "CCC"], canonical_smiles=["C", "CC", "CCC"],
        protein_ids=["p0", "p1"], sequences=["MKV", "ACD"], drug_index=np.array([0, 1, 2, 0, 2]),
        protein_index=np.array([0, 0, 0, 1, 1]), affinity=np.array([5.0, 6.0, 7.0, 8.0, 9.0], dtype=np.float32),
        pair_numbers=np.arange(5),
    )  # fmt: skip
    protein_codes = np.array([[11, 9, 18], [1, 2, 3]], dtype=np.uint8)
    rows = protein_rows(data, np.array([0, 1, 2, 4]), protein_codes, pairs_per_row=2, seed=0)  # pair 3 held out
    assert len(rows) == 3 and rows.labels.shape == (3, 2)  # p0 (3 pairs) -> 2 rows, p1 (1 pair) -> 1 row
    drug_codes = np.array([[35, 0], [35, 35], [36, 36]], dtype=np.uint8)
    batch = DrugPanel(drug_codes)({k: v for k, v in rows.tensors().items()})
    pairs = {(tuple(batch["drug"][d].tolist()), tuple(batch["protein"][p].tolist()), float(y))
             for d, p, y in zip(batch["pair_drug"], batch["pair_protein"], batch["label"])}
    expected = {(tuple(drug_codes[data.drug_index[k]]), tuple(protein_codes[data.protein_index[k]]),
                 float(data.affinity[k])) for k in (0, 1, 2, 4)}
    assert pairs == expected and len(batch["protein"]) == 2  # p0's two rows share one protein encoding


def test_cold_protein_split_keeps_identical_sequences_on_one_side():
    from medai.tasks.affinity_data import split_pairs

    rng = np.random.default_rng(0)
    sequences = ["MKV", "MKV", "ACD", "WYW", "GGH", "PPL", "KKR", "DEE", "FFA", "LLI"]  # proteins 0 and 1 identical
    drug_index, protein_index = np.meshgrid(np.arange(4), np.arange(10), indexing="ij")
    data = AffinityData(
        drug_ids=[f"d{k}" for k in range(4)], drug_smiles=["C", "CC", "CCC", "CCCC"],
        canonical_smiles=["C", "CC", "CCC", "CCCC"], protein_ids=[f"p{k}" for k in range(10)], sequences=sequences,
        drug_index=drug_index.ravel(), protein_index=protein_index.ravel(),
        affinity=rng.normal(6, 1, 40).astype(np.float32), pair_numbers=np.arange(40),
    )  # fmt: skip
    parts, description = split_pairs(data, "cold-protein", seed=1, validation_fold=0)
    sides = [{sequences[p] for p in data.protein_index[index]} for index in parts.values()]
    assert all(not (a & b) for k, a in enumerate(sides) for b in sides[k + 1 :]) and "cold-protein" in description
    with pytest.raises(InvalidInputError, match="no DeepDTA folds"):
        split_pairs(data, "deepdta", seed=0, validation_fold=0)
