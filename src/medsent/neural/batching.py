"""Static-length padding shared by training and inference (no Lightning import: keeps predict fast)."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch


def bucket_of(length: int, buckets: Sequence[int]) -> int:
    """Index of the smallest bucket that fits; longer sequences were cut to the last bucket."""
    return min(bisect.bisect_left(list(buckets), length), len(buckets) - 1)


class PadCollator:
    """Pad a batch to its bucket's static length (GPU: few shapes), or to its longest row (CPU:
    shapes cost nothing there, padding does)."""

    def __init__(self, buckets: Sequence[int], pad_id: int, static: bool = True) -> None:
        self.buckets = list(buckets)
        self.pad_id = pad_id
        self.static = static

    def __call__(self, items: list[tuple[Any, ...]]) -> dict[str, torch.Tensor]:
        """Items are (ids, label) or (ids, label, extras): "targets" (levels), "soft" (teacher
        probabilities), "prefix" (cached hidden states, length x hidden)."""
        longest = max(len(item[0]) for item in items)
        width = max(self.buckets[bucket_of(longest, self.buckets)], longest) if self.static else longest
        input_ids = torch.full((len(items), width), self.pad_id, dtype=torch.long)
        for row, item in enumerate(items):
            input_ids[row, : len(item[0])] = torch.as_tensor(item[0], dtype=torch.long)
        batch = {
            "input_ids": input_ids,
            "attention_mask": input_ids != self.pad_id
            if self.pad_id >= 0
            else torch.ones_like(input_ids, dtype=torch.bool),
            "labels": torch.as_tensor([item[1] for item in items], dtype=torch.long),
        }
        if len(items[0]) > 2:
            for key, dtype in (("targets", torch.long), ("soft", torch.float32)):
                if key in items[0][2]:
                    batch[key] = torch.as_tensor(np.stack([item[2][key] for item in items]), dtype=dtype)
            if "prefix" in items[0][2]:
                # Cached hidden states after a frozen encoder bottom stand in for the token ids.
                rows = [item[2]["prefix"] for item in items]
                hidden = np.zeros((len(items), width, rows[0].shape[1]), dtype=np.float32)
                for row, states in enumerate(rows):
                    hidden[row, : len(states)] = states
                batch["input_ids"] = torch.from_numpy(hidden)
        return batch
