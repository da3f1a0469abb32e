"""Negative sampling follows popularity ** alpha."""

import numpy as np
import torch

from models import sampling
from models.sampling import NegativeSampler, alias_table


def test_alias_table_encodes_the_distribution_exactly():
    probs = np.array([0.05, 0.4, 0.0, 0.15, 0.3, 0.1])
    keep, alias = alias_table(probs)
    n = len(probs)
    implied = keep.double().numpy() / n
    np.add.at(implied, alias.numpy(), (1 - keep.double().numpy()) / n)
    np.testing.assert_allclose(implied, probs, atol=1e-7)


def test_samples_follow_popularity_to_the_power_alpha(monkeypatch):
    monkeypatch.setattr(sampling, "CHUNK_SAMPLES", 1000)  # exercise many refills
    counts = torch.tensor([1, 4, 9, 0, 16])
    sampler = NegativeSampler(counts, n_sample=100, alpha=0.5, generator=torch.Generator().manual_seed(0))
    draws = torch.cat([sampler() for _ in range(2000)])
    frequencies = torch.bincount(draws, minlength=5).double() / len(draws)
    expected = torch.tensor([1, 2, 3, 0, 4]).double() / 10  # sqrt of the counts, normalised
    assert frequencies[3] == 0  # an item never seen is never drawn
    torch.testing.assert_close(frequencies, expected, atol=0.005, rtol=0)


def test_sampling_is_reproducible_from_the_generator():
    counts = torch.arange(1, 50)

    def draw(seed):
        sampler = NegativeSampler(
            counts, n_sample=64, alpha=0.75, generator=torch.Generator().manual_seed(seed)
        )
        return torch.stack([sampler() for _ in range(3)])

    assert torch.equal(draw(1), draw(1))
    assert not torch.equal(draw(1), draw(2))
