"""Examples -> token ids -> padded batches.

Everything is tokenized once, unpadded; each batch is padded to its own longest sequence, which on a
CPU is most of the speed (questions are a few dozen tokens, far below max_seq_length).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from trainer.data import YES_NO, Example, text_pair


def encode(tokenizer, examples: Sequence[Example], task_format: str, max_length: int) -> list[dict]:
    """One feature dict per example: token lists (one per option if multiple choice), label and
    index (the example's position in its split, to write predictions in file order)."""
    if task_format == YES_NO:
        pairs = [text_pair(example) for example in examples]
        rows_per_example = 1
    else:
        pairs = [text_pair(example, option) for example in examples for option in example.options]
        rows_per_example = len(examples[0].options)
    # Pairs with and without a second text cannot share one tokenizer call.
    encoded = [None] * len(pairs)
    for has_second in (False, True):
        positions = [i for i, (_, second) in enumerate(pairs) if (second is not None) == has_second]
        if not positions:
            continue
        firsts = [pairs[i][0] for i in positions]
        seconds = [pairs[i][1] for i in positions] if has_second else None
        batch = tokenizer(firsts, seconds, truncation=True, max_length=max_length)
        for row, i in enumerate(positions):
            encoded[i] = {key: values[row] for key, values in batch.items()}
    features = []
    for index, example in enumerate(examples):
        rows = encoded[index * rows_per_example : (index + 1) * rows_per_example]
        feature = {key: [row[key] for row in rows] for key in rows[0]}
        if task_format == YES_NO:
            feature = {key: values[0] for key, values in feature.items()}
        feature["labels"] = example.label
        feature["index"] = index
        features.append(feature)
    return features


class PadCollator:
    """Pads token lists to the longest in the batch: (batch, length) or (batch, options, length)."""

    def __init__(self, pad_token_id: int, pad_to_multiple_of: int | None = None):
        self.pad_values = {"input_ids": pad_token_id}  # masks and token types pad with 0
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        token_keys = [key for key in features[0] if key not in ("labels", "index")]
        multiple_choice = isinstance(features[0]["input_ids"][0], list)
        rows = (
            [row for feature in features for row in feature["input_ids"]]
            if multiple_choice
            else [feature["input_ids"] for feature in features]
        )
        length = max(len(row) for row in rows)
        if self.pad_to_multiple_of:
            length = -(-length // self.pad_to_multiple_of) * self.pad_to_multiple_of
        batch = {}
        for key in token_keys:
            pad = self.pad_values.get(key, 0)
            if multiple_choice:
                padded = [
                    [row + [pad] * (length - len(row)) for row in feature[key]]
                    for feature in features
                ]
            else:
                padded = [
                    feature[key] + [pad] * (length - len(feature[key])) for feature in features
                ]
            batch[key] = torch.tensor(padded, dtype=torch.long)
        batch["labels"] = torch.tensor(
            [feature["labels"] for feature in features], dtype=torch.long
        )
        batch["index"] = torch.tensor([feature["index"] for feature in features], dtype=torch.long)
        return batch
