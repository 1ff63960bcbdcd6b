"""The Ambiguous-MNIST generator (DDU recipe), step by step, on real MNIST from the package copy."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch
import yaml

from softdigits import io
from softdigits.corpora.mnist import mnist_from_package
from softdigits.generator import ensemble, inputs, pool, select, vae
from softdigits.generator.ensemble import MemberSettings
from softdigits.generator.inputs import GeneratorError, MnistSplits
from softdigits.generator.pool import FilterSettings, MixSettings
from softdigits.generator.select import StratifySettings
from softdigits.generator.vae import VaeSettings

REPO = Path(__file__).resolve().parents[2]
DEFAULTS = yaml.safe_load((REPO / "workflow_config.yaml").read_text())


@pytest.fixture(scope="module")
def mnist_path(tmp_path_factory) -> Path:
    """All of MNIST in the images contract (what results/corpora/mnist.parquet holds)."""
    path = tmp_path_factory.mktemp("mnist") / "mnist.parquet"
    io.write_table(mnist_from_package(DEFAULTS["corpora"]["mnist"]["idx_checksums"]), path)
    return path


@pytest.fixture(scope="module")
def mnist(mnist_path) -> MnistSplits:
    return inputs.read_mnist(mnist_path)


def subset(mnist: MnistSplits, n_train: int, n_test: int) -> MnistSplits:
    return MnistSplits(
        mnist.train_ids[:n_train],
        mnist.train_pixels[:n_train],
        mnist.train_labels[:n_train],
        mnist.test_pixels[:n_test],
        mnist.test_labels[:n_test],
    )


# Small enough to run in seconds; the filter is loosened because such small models
# disagree a lot (the workflow test keeps the recipe's thresholds).
TINY_VAE = VaeSettings(hidden=(128, 64), latent_dim=8, epochs=15, batch_size=64)
TINY_MEMBER = MemberSettings(epochs=4)
TINY_MIX = MixSettings(pool_size=3000, chunk_size=1000, weightings_per_group=16)
LOOSE_FILTER = FilterSettings(max_mutual_information=0.3, min_entropy=0.05, max_entropy=3.0)
TINY_STRATIFY = StratifySettings(n_images=150, n_bins=10)


def generate(mnist: MnistSplits, tmp: Path, seed: int, mix: MixSettings = TINY_MIX):
    """The whole recipe at tiny scale; returns (corpus, records, summary, pool path)."""
    trained = vae.train_vae(mnist.train_pixels, TINY_VAE, vae.vae_seed(seed))
    members = [ensemble.train_member(mnist, TINY_MEMBER, ensemble.member_seed(seed, m))[0] for m in range(2)]
    pool_path = tmp / f"pool_seed{seed}_chunk{mix.chunk_size}.parquet"
    pool.build_pool(trained, members, mnist, mix, LOOSE_FILTER, seed, pool_path)
    return (*select.select_corpus(pool_path, mnist, TINY_STRATIFY, seed), pool_path)


@pytest.fixture(scope="module")
def tiny(mnist, tmp_path_factory):
    return generate(subset(mnist, 2000, 500), tmp_path_factory.mktemp("tiny"), seed=0)


# ------------------------------------------------------------ the VAE


def test_the_vae_learns_decays_its_lr_at_the_milestones_and_round_trips(mnist, tmp_path):
    settings = replace(TINY_VAE, epochs=4, lr_milestones=(1, 3), lr_decay=0.5)
    trained = vae.train_vae(mnist.train_pixels[:1000], settings, seed=0)
    assert trained.history["lr"].tolist() == pytest.approx([1e-3, 5e-4, 5e-4, 2.5e-4])
    assert trained.history["neg_elbo"].iloc[-1] < trained.history["neg_elbo"].iloc[0]
    assert trained.mnist_mean == pytest.approx(mnist.train_pixels[:1000].mean() / 255)
    z = trained.encode_means(mnist.train_pixels[:20])
    images = trained.decode_images(z, contrast=1.2, offset=0.15)
    assert images.dtype == np.uint8 and images.shape == (20, 784) and images.max() > 200
    vae.save_vae(trained, tmp_path / "vae.pt")
    loaded = vae.load_vae(tmp_path / "vae.pt")
    assert loaded.decoded_std == trained.decoded_std and loaded.settings == settings
    assert np.array_equal(loaded.decode_images(z, 1.2, 0.15), images)


# ------------------------------------------------------------ the ensemble


def test_one_member_with_the_default_settings_reaches_98_percent(mnist):
    """The default member (LeNet-5 without padding, default epochs/batch/lr) on all of
    MNIST. One member rather than five keeps the suite affordable; the ensemble's mean
    softmax is at least as accurate in practice (see ensemble_accuracy.csv of a run)."""
    settings = DEFAULTS["generator"]["ensemble"]
    member_settings = inputs.settings(MemberSettings, {k: v for k, v in settings.items() if k != "members"})
    _, summary = ensemble.train_member(mnist, member_settings, ensemble.member_seed(DEFAULTS["generator"]["seed"], 0))
    assert summary["n_train"] == 60_000 and summary["n_test"] == 10_000
    assert summary["test_accuracy"] >= 0.98
    assert 1 <= summary["best_epoch"] <= settings["epochs"]


def test_uncertainty_of_agreeing_and_disagreeing_members():
    uniform = np.full((2, 1, 10), 0.1)
    mean, entropy, mi = ensemble.uncertainty(uniform)
    assert np.allclose(mean, 0.1) and np.isclose(entropy[0], np.log(10)) and np.isclose(mi[0], 0)
    disagree = np.zeros((2, 1, 10))
    disagree[0, 0, 3] = disagree[1, 0, 5] = 1.0  # two confident members, different classes
    _, entropy, mi = ensemble.uncertainty(disagree)
    assert np.isclose(entropy[0], np.log(2)) and np.isclose(mi[0], np.log(2))


# ------------------------------------------------------------ selection


WITHOUT = dict(replace=False)


def test_select_without_replacement_takes_no_image_twice_and_stays_in_the_bins():
    rng = np.random.default_rng(1)
    entropy = np.concatenate([rng.uniform(0.0, 2.0, 500), [0.3, 0.3]])
    sha = [f"h{i}" for i in range(500)] + ["h7", "h7"]  # three rows with the same pixels
    strat = StratifySettings(n_images=200, n_bins=5, low=0.05, high=1.6, **WITHOUT)
    sel = select.select(entropy, sha, strat, seed=0)
    assert len(sel.rows) == 200 and len(set(sel.rows)) == 200
    assert len({sha[r] for r in sel.rows}) == 200
    assert ((entropy[sel.rows] >= 0.05) & (entropy[sel.rows] <= 1.6)).all()
    assert sel.n_train == 100 and sel.target.sum() == 200
    assert sel.available.sum() == np.sum((entropy[:500] >= 0.05) & (entropy[:500] <= 1.6))
    assert np.array_equal(sel.drawn, sel.target) and np.array_equal(sel.unique, sel.drawn)
    again = select.select(entropy, sha, strat, seed=0)
    assert np.array_equal(sel.rows, again.rows)
    assert not np.array_equal(sel.rows, select.select(entropy, sha, strat, seed=1).rows)


def test_select_without_replacement_returns_what_the_pool_holds_when_it_is_short():
    entropy = np.linspace(0.1, 1.5, 30)
    sel = select.select(entropy, [str(i) for i in range(30)], StratifySettings(n_images=100, **WITHOUT), seed=0)
    assert sorted(sel.rows.tolist()) == list(range(30)) and sel.n_train == 15


def thin_tail_pool():
    """400 distinct candidates in [0.05, 0.5), 3 in [0.5, 1.0), none in [1.0, 1.6]
    (three bins of 0.45-0.55 nats); two more rows repeat a low-entropy image's pixels."""
    rng = np.random.default_rng(3)
    entropy = np.concatenate([rng.uniform(0.05, 0.5, 400), [0.6, 0.7, 0.8], [0.1, 0.1]])
    sha = [f"h{i}" for i in range(403)] + ["h0", "h0"]
    return entropy, sha


def test_select_with_replacement_meets_every_target_by_repeating_thin_bins():
    entropy, sha = thin_tail_pool()
    strat = StratifySettings(n_images=300, n_bins=3, low=0.05, high=1.6, power=0.5)
    sel = select.select(entropy, sha, strat, seed=0)
    # targets ~ pool ** 0.5 over the non-empty bins: 300 * [20, sqrt 3] / (20 + sqrt 3), exactly met
    assert sel.available.tolist() == [400, 3, 0]
    assert sel.target.tolist() == [276, 24, 0] and sel.target.sum() == 300
    assert np.array_equal(sel.drawn, sel.target) and len(sel.rows) == 300
    # the 3-candidate bin is filled by repeats; the 400-candidate bin repeats a few by chance
    assert sel.unique[1] == 3 and sel.unique[0] < 276
    assert len(set(sel.rows.tolist())) == sel.unique.sum() < 300
    # only the first of identical pixels is ever drawn
    assert not set(sel.rows.tolist()) & {403, 404}
    again = select.select(entropy, sha, strat, seed=0)
    assert np.array_equal(sel.rows, again.rows)
    assert not np.array_equal(sel.rows, select.select(entropy, sha, strat, seed=1).rows)
    # without replacement the thin bin gives its 3 and its share goes to the other bin
    without = select.select(entropy, sha, replace(strat, replace=False), seed=0)
    assert without.target.tolist() == [297, 3, 0] and len(set(without.rows.tolist())) == 300


def test_the_per_bin_table_counts_what_was_drawn():
    entropy, sha = thin_tail_pool()
    strat = StratifySettings(n_images=300, n_bins=3, low=0.05, high=1.6, power=0.5)
    sel = select.select(entropy, sha, strat, seed=0)
    bins = sel.bins()
    assert bins.columns.tolist() == ["low", "high", "target", "pool", "drawn", "unique"]
    assert np.allclose(bins["low"], [0.05, 0.5667, 1.0833], atol=1e-4)
    which = np.searchsorted(bins["high"].to_numpy(), entropy[sel.rows], side="right")
    assert bins["drawn"].tolist() == np.bincount(which, minlength=3).tolist()
    distinct = np.unique(sel.rows)
    assert (
        bins["unique"].tolist()
        == np.bincount(np.searchsorted(bins["high"].to_numpy(), entropy[distinct], side="right"), minlength=3).tolist()
    )


def test_bin_targets_with_replacement_follow_the_power_shape_exactly():
    strat = StratifySettings(n_images=1000, power=0.2)
    counts = np.array([100_000, 3_125, 1, 0])
    target = select.bin_targets(counts, strat)
    weight = np.array([10.0, 5.0, 1.0])  # 100000 ** 0.2, 3125 ** 0.2, 1
    # 625, 312.5, 62.5: the tied remainder goes to the lower bin; the empty bin gets none
    assert target.tolist() == [625, 313, 62, 0] and abs(target[:3] - 1000 * weight / 16).max() < 1
    # without replacement the 1-candidate bin gives 1 and its 61 go 2:1 to the others
    assert select.bin_targets(counts, replace(strat, replace=False)).tolist() == [666, 333, 1, 0]


def test_label_draws_follow_the_distribution():
    probs = np.zeros((3, 10))
    probs[0, 4] = 1.0
    probs[1, [2, 7]] = 0.5
    probs[2] = 0.1
    draws = select.draw_labels(np.repeat(probs, 400, axis=0), 10, seed=0)
    assert draws.shape == (1200, 10) and draws.dtype == np.int64
    assert (draws[:400] == 4).all()
    assert set(np.unique(draws[400:800])) == {2, 7} and abs((draws[400:800] == 2).mean() - 0.5) < 0.05
    assert set(np.unique(draws[800:])) == set(range(10))
    assert np.array_equal(draws, select.draw_labels(np.repeat(probs, 400, axis=0), 10, seed=0))


# ------------------------------------------------------------ the whole recipe, tiny


def test_the_corpus_meets_its_contract_and_the_filter(tiny, mnist):
    corpus, records, summary, _ = tiny
    n = corpus.num_rows
    assert n == TINY_STRATIFY.n_images == summary["n_images"]
    io.validate_images(corpus)
    assert corpus.column("image_id").to_pylist()[:2] == ["mukhoti:train:0", "mukhoti:train:1"]
    split = np.asarray(corpus.column("source_split").to_pylist())
    assert (split[: n // 2] == "train").all() and (split[n // 2 :] == "test").all()
    assert corpus.column("image_id").to_pylist()[n // 2] == "mukhoti:test:0"
    dist = io.vectors_array(corpus, "label_dist")
    assert corpus.schema.field("label_dist").type.value_type == pa.float32()
    assert np.allclose(dist.sum(axis=1), 1, atol=1e-5)
    assert np.array_equal(corpus.column("label").to_numpy(), dist.argmax(axis=1))
    sampled = io.vectors_array(corpus, "sampled_labels")
    assert sampled.shape == (n, 10) and sampled.min() >= 0 and sampled.max() <= 9
    # drawn with replacement (the default): the summary counts the exact repeats
    assert summary["replace"] is True
    assert len(set(corpus.column("sha256").to_pylist())) == summary["n_distinct"] == n - summary["n_repeats"]
    # every kept image passed the filter and lies in the stratification range
    rec = records.to_pandas()
    assert rec["image_id"].tolist() == corpus.column("image_id").to_pylist()
    assert (rec["mutual_information"] <= LOOSE_FILTER.max_mutual_information).all()
    assert rec["entropy"].between(max(LOOSE_FILTER.min_entropy, TINY_STRATIFY.low), TINY_STRATIFY.high).all()
    entropy = -np.sum(np.where(dist > 0, dist * np.log(np.where(dist > 0, dist, 1)), 0), axis=1)
    assert np.allclose(entropy, rec["entropy"], atol=1e-4)  # the record belongs to the stored label


def test_generation_records_name_real_parents_of_different_classes(tiny, mnist):
    _, records, _, _ = tiny
    labels = dict(zip(mnist.train_ids, mnist.train_labels))
    for row in records.to_pylist():
        parents = row["parent_image_ids"]
        assert 2 <= len(parents) <= 4 and all(p.startswith("mnist:train:") for p in parents)
        assert [labels[p] for p in parents] == row["parent_labels"]
        assert len(set(row["parent_labels"])) == len(parents)
        assert len(row["mix_weights"]) == len(parents) and abs(sum(row["mix_weights"]) - 1) < 1e-5
    assert records.schema.field("mix_weights").type == pa.list_(pa.float32())
    assert records.schema.field("parent_labels").type == pa.list_(pa.int64())


def test_the_ensemble_scores_the_stored_pixels(tiny, mnist):
    """Re-scoring a pool image's stored pixels gives its stored label distribution."""
    _, _, _, pool_path = tiny
    stored = inputs.read_pool(pool_path).slice(0, 50)
    small = subset(mnist, 2000, 500)
    members = [ensemble.train_member(small, TINY_MEMBER, ensemble.member_seed(0, m))[0] for m in range(2)]
    mean, entropy, mi = ensemble.uncertainty(ensemble.ensemble_probs(members, inputs.pool_pixels(stored)))
    assert np.allclose(mean, io.vectors_array(stored, "probs"), atol=1e-5)
    assert np.allclose(entropy, stored.column("entropy").to_numpy(), atol=1e-6)


def test_the_stacked_ensemble_gives_every_member_its_own_softmax_bit_for_bit():
    """Ensemble scores the members as one stacked network (the first convolution shared when
    the members share their normalisation); each member's probabilities are those of its own
    module, bit for bit, with shared and with separate normalisations."""
    rng = np.random.default_rng(0)
    pixels = (rng.random((600, 784)) * 255).astype(np.uint8)
    models = []
    for m in range(3):
        torch.manual_seed(m)
        models.append(ensemble.lenet(padding=0).to(memory_format=torch.channels_last))
    for stats in ([(0.13, 0.31)] * 3, [(0.13, 0.31), (0.1, 0.3), (0.2, 0.35)]):
        members = [ensemble.Member(model, *s) for model, s in zip(models, stats)]
        got = ensemble.Ensemble(members).probs(pixels)
        assert got.shape == (3, 600, 10) and got.dtype == np.float64
        for m, member in enumerate(members):
            assert np.array_equal(got[m], member.probs(pixels).double().numpy())
    assert not np.array_equal(got[0], got[1])  # and the comparison can fail


def test_the_pool_is_the_same_bytes_on_one_thread_or_two(mnist, tmp_path):
    small = subset(mnist, 2000, 500)
    trained = vae.train_vae(small.train_pixels, replace(TINY_VAE, epochs=1), seed=0)
    members = [ensemble.train_member(small, replace(TINY_MEMBER, epochs=1), seed=m)[0] for m in range(2)]
    paths = [tmp_path / f"pool{threads}.parquet" for threads in (1, 2)]
    for threads, path in zip((1, 2), paths):
        pool.build_pool(trained, members, small, TINY_MIX, LOOSE_FILTER, 0, path, threads=threads)
    assert paths[0].read_bytes() == paths[1].read_bytes()
    stored = inputs.read_pool(paths[0])
    assert stored.num_rows > 0 and inputs.pool_pixels(stored).shape == (stored.num_rows, 784)


def test_a_fixed_seed_gives_the_same_corpus_and_chunking_does_not_matter(tiny, mnist, tmp_path):
    corpus, records, _, _ = tiny
    small = subset(mnist, 2000, 500)
    again, again_records, _, _ = generate(small, tmp_path, seed=0, mix=replace(TINY_MIX, chunk_size=700))
    assert again.equals(corpus) and again_records.equals(records)
    other, _, _, _ = generate(small, tmp_path, seed=1)
    assert not other.column("sha256").equals(corpus.column("sha256"))


# ------------------------------------------------------------ errors


def test_bad_inputs_are_named(mnist, mnist_path, tmp_path):
    train_only = io.read_images(mnist_path).slice(0, 100)
    io.write_table(train_only, tmp_path / "train_only.parquet")
    with pytest.raises(GeneratorError, match=r"train_only.parquet: no MNIST images with source_split 'test'"):
        inputs.read_mnist(tmp_path / "train_only.parquet")
    (tmp_path / "vae.pt").write_text("not a checkpoint")
    with pytest.raises(GeneratorError, match=r"vae.pt: not a readable checkpoint"):
        vae.load_vae(tmp_path / "vae.pt")
    torch.save({"state_dict": {}}, tmp_path / "member.pt")
    with pytest.raises(GeneratorError, match=r"member.pt: checkpoint lacks \['mean', 'std'\]"):
        ensemble.load_member(tmp_path / "member.pt")
    two_classes = mnist.train_labels[:50] % 2
    with pytest.raises(GeneratorError, match=r"generator.mixing.group_sizes: groups of 4"):
        pool.mixing_plan(two_classes, MixSettings(), seed=0)


def test_an_empty_pool_is_an_error_and_a_failed_pool_leaves_no_file(mnist, tmp_path, monkeypatch):
    small = subset(mnist, 300, 100)
    trained = vae.train_vae(small.train_pixels, replace(TINY_VAE, epochs=1), seed=0)
    member = ensemble.train_member(small, replace(TINY_MEMBER, epochs=1), seed=0)[0]
    strict = FilterSettings(max_mutual_information=-1.0, min_entropy=0.05, max_entropy=3.0)
    empty = tmp_path / "empty.parquet"
    counts = pool.build_pool(trained, [member], small, replace(TINY_MIX, pool_size=500), strict, 0, empty)
    assert counts["kept"] == 0 and counts["mi_too_high"] == counts["mixtures"] == 512
    with pytest.raises(GeneratorError, match=r"empty.parquet: the candidate pool is empty"):
        select.select_corpus(empty, small, TINY_STRATIFY, 0)

    calls = []

    score_block = pool.score_block

    def fail_on_second_block(vae, scorer, z, mix):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("scoring failed")
        return score_block(vae, scorer, z, mix)

    monkeypatch.setattr(pool, "score_block", fail_on_second_block)
    with pytest.raises(RuntimeError, match="scoring failed"):
        pool.build_pool(
            trained, [member], small, replace(TINY_MIX, pool_size=2000), LOOSE_FILTER, 0, tmp_path / "partial.parquet"
        )
    assert not (tmp_path / "partial.parquet").exists()
    assert not list(tmp_path.glob(".partial.parquet*"))
