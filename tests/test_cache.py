"""TemplateCache: LRU order, counters, disabling, and read-only stored copies."""

from __future__ import annotations

import numpy as np
import pytest

from service.cache import TemplateCache


def probs(*values) -> np.ndarray:
    return np.array(values, dtype=np.float32)


def test_miss_then_hit():
    cache = TemplateCache(4)
    assert cache.get("a") is None
    cache.put("a", probs(0.9, 0.1))
    np.testing.assert_array_equal(cache.get("a"), probs(0.9, 0.1))
    assert (cache.hits, cache.misses) == (1, 1)
    assert "a" in cache and "b" not in cache
    assert len(cache) == 1


def test_evicts_least_recently_put():
    cache = TemplateCache(2)
    cache.put("a", probs(1))
    cache.put("b", probs(2))
    cache.put("c", probs(3))
    assert len(cache) == 2
    assert "a" not in cache
    assert "b" in cache and "c" in cache


def test_get_refreshes_recency():
    cache = TemplateCache(2)
    cache.put("a", probs(1))
    cache.put("b", probs(2))
    assert cache.get("a") is not None  # "a" is now the most recent; "b" goes next
    cache.put("c", probs(3))
    assert "a" in cache and "c" in cache
    assert "b" not in cache


def test_put_existing_key_refreshes_and_replaces():
    cache = TemplateCache(2)
    cache.put("a", probs(1))
    cache.put("b", probs(2))
    cache.put("a", probs(10))
    cache.put("c", probs(3))
    assert "b" not in cache
    assert len(cache) == 2
    np.testing.assert_array_equal(cache.get("a"), probs(10))


def test_contains_does_not_count_or_refresh():
    cache = TemplateCache(2)
    cache.put("a", probs(1))
    cache.put("b", probs(2))
    assert "a" in cache
    assert (cache.hits, cache.misses) == (0, 0)
    cache.put("c", probs(3))
    assert "a" not in cache


def test_eviction_order_over_many_keys():
    cache = TemplateCache(3)
    for i in range(10):
        cache.put(f"k{i}", probs(i))
    assert [k for k in (f"k{i}" for i in range(10)) if k in cache] == ["k7", "k8", "k9"]


def test_hit_ratio():
    cache = TemplateCache(4)
    assert cache.hit_ratio == 0.0  # no lookups yet: no division by zero
    cache.put("a", probs(1))
    for key in ("a", "a", "a", "b"):
        cache.get(key)
    assert (cache.hits, cache.misses) == (3, 1)
    assert cache.hit_ratio == pytest.approx(0.75)


def test_clear_empties_but_keeps_counters():
    cache = TemplateCache(4)
    cache.put("a", probs(1))
    cache.get("a")
    cache.clear()
    assert len(cache) == 0
    assert cache.get("a") is None
    assert (cache.hits, cache.misses) == (1, 1)


def test_zero_entries_disables():
    cache = TemplateCache(0)
    cache.put("a", probs(1))
    assert len(cache) == 0
    assert "a" not in cache
    assert cache.get("a") is None
    assert cache.misses == 1


def test_negative_size_rejected():
    with pytest.raises(ValueError):
        TemplateCache(-1)


def test_stored_value_is_a_readonly_copy():
    cache = TemplateCache(4)
    original = probs(0.2, 0.8)
    cache.put("a", original)
    original[0] = 99.0
    cached = cache.get("a")
    np.testing.assert_array_equal(cached, probs(0.2, 0.8))
    assert not cached.flags.writeable
    with pytest.raises(ValueError):
        cached[0] = 1.0
    np.testing.assert_array_equal(cache.get("a"), probs(0.2, 0.8))


def test_stored_value_is_float32_from_any_input():
    cache = TemplateCache(4)
    cache.put("list", [0.25, 0.75])
    cache.put("f64", np.array([0.5, 0.5], dtype=np.float64))
    for key in ("list", "f64"):
        value = cache.get(key)
        assert value.dtype == np.float32
        assert not value.flags.writeable
    np.testing.assert_array_equal(cache.get("list"), probs(0.25, 0.75))


def test_view_input_is_copied():
    base = probs(0.1, 0.9)
    cache = TemplateCache(4)
    cache.put("a", base[:])  # a view of base
    base[1] = 0.0
    np.testing.assert_array_equal(cache.get("a"), probs(0.1, 0.9))
